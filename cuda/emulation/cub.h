// cub's DeviceRadixSort::SortPairs and DoubleBuffer on the host, to cub's documented contract: a first call with no
// temporary storage asks its size; the sort is stable on bits [begin_bit, end_bit) of the keys; it leaves the
// sorted pairs in whichever buffer of each DoubleBuffer it likes, named by the selector (read them through
// Current()); the other buffer's contents and the temporary storage are left undefined (here: poisoned).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <vector>

#include "grid.h"

using cudaStream_t = void*;
enum cudaError_t : int { cudaSuccess = 0, cudaErrorInvalidValue = 1 };

namespace cub {

template <typename T>
struct DoubleBuffer {
  T* d_buffers[2] = {nullptr, nullptr};
  int selector = 0;

  DoubleBuffer() = default;
  DoubleBuffer(T* current, T* alternate) : d_buffers{current, alternate} {}
  T* Current() const { return d_buffers[selector]; }
  T* Alternate() const { return d_buffers[selector ^ 1]; }
};

struct DeviceRadixSort {
  // Which buffer the next sort leaves its result in: alternates, so a reader of the wrong buffer fails one way or
  // the other.
  static int& next_selector() {
    static int selector = 1;
    return selector;
  }

  template <typename Key, typename Value>
  static std::size_t temp_bytes_for(int num_items) {
    return std::size_t(std::max(num_items, 1)) * (sizeof(Key) + sizeof(Value)) + 256;
  }

  template <typename Key, typename Value, typename NumItems>
  static cudaError_t SortPairs(void* d_temp_storage, std::size_t& temp_storage_bytes, DoubleBuffer<Key>& keys,
                               DoubleBuffer<Value>& values, NumItems num_items, int begin_bit = 0,
                               int end_bit = int(sizeof(Key) * 8), cudaStream_t = nullptr) {
    const std::size_t needed = temp_bytes_for<Key, Value>(int(num_items));
    if (d_temp_storage == nullptr) {
      temp_storage_bytes = needed;
      return cudaSuccess;
    }
    if (temp_storage_bytes < needed || begin_bit < 0 || end_bit > int(sizeof(Key) * 8) || begin_bit >= end_bit ||
        num_items < 0) {
      return cudaErrorInvalidValue;
    }
    std::memset(d_temp_storage, 0xFF, temp_storage_bytes);
    const int64_t n = int64_t(num_items);
    const int bits = end_bit - begin_bit;
    const uint64_t field = bits >= 64 ? ~uint64_t(0) : (uint64_t(1) << bits) - 1;
    auto digits = [&](Key k) { return (uint64_t(k) >> begin_bit) & field; };
    const Key* in_keys = keys.Current();
    const Value* in_values = values.Current();
    std::vector<int64_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return digits(in_keys[a]) < digits(in_keys[b]); });
    std::vector<Key> sorted_keys(n);
    std::vector<Value> sorted_values(n);
    for (int64_t i = 0; i < n; ++i) {
      sorted_keys[i] = in_keys[order[i]];
      sorted_values[i] = in_values[order[i]];
    }
    if ((next_selector() ^= 1) != 0) {
      keys.selector ^= 1;
      values.selector ^= 1;
    }
    std::memcpy(keys.Current(), sorted_keys.data(), n * sizeof(Key));
    std::memcpy(values.Current(), sorted_values.data(), n * sizeof(Value));
    std::memset(static_cast<void*>(keys.Alternate()), 0xFF, n * sizeof(Key));
    std::memset(static_cast<void*>(values.Alternate()), 0xFF, n * sizeof(Value));
    return cudaSuccess;
  }
};

}  // namespace cub
