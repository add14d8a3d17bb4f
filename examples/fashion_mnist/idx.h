// Reads Fashion-MNIST's idx files (the format of yann.lecun.com's MNIST: a big-endian header, then the bytes), plain
// or gzip-compressed as Debian's dataset-fashion-mnist ships them, into uint8 tensors.
#pragma once

#include <torch/torch.h>
#include <zlib.h>

#include <array>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace fashion_mnist {

// The whole (decompressed) file; gzread reads plain files unchanged, so one path serves both.
inline std::vector<uint8_t> read_file(const std::filesystem::path& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) throw std::runtime_error("cannot open " + path.string());
  std::vector<uint8_t> bytes;
  std::array<uint8_t, 1 << 16> chunk;
  int got = 0;
  while ((got = gzread(file, chunk.data(), chunk.size())) > 0) bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + got);
  const bool failed = got < 0;
  gzclose(file);
  if (failed) throw std::runtime_error(path.string() + ": not a readable idx or gzip file");
  return bytes;
}

inline uint32_t big_endian(const std::vector<uint8_t>& bytes, size_t at) {
  return uint32_t(bytes[at]) << 24 | uint32_t(bytes[at + 1]) << 16 | uint32_t(bytes[at + 2]) << 8 | bytes[at + 3];
}

// An idx file of unsigned bytes (type code 0x08) as a uint8 tensor of the dimensions its header gives.
inline torch::Tensor read_idx(const std::filesystem::path& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08)
    throw std::runtime_error(path.string() + ": not an idx file of unsigned bytes");
  const size_t dims = bytes[3];
  if (bytes.size() < 4 + 4 * dims) throw std::runtime_error(path.string() + ": truncated idx header");
  std::vector<int64_t> shape;
  size_t count = 1;
  for (size_t d = 0; d < dims; ++d) {
    shape.push_back(big_endian(bytes, 4 + 4 * d));
    count *= shape.back();
  }
  const size_t header = 4 + 4 * dims;
  if (bytes.size() != header + count)
    throw std::runtime_error(path.string() + ": the header promises " + std::to_string(count) + " bytes, the file has " +
                             std::to_string(bytes.size() - header));
  return torch::from_blob(const_cast<uint8_t*>(bytes.data()) + header, shape, torch::kUInt8).clone();
}

// `stem` in `dir`, or `stem`.gz.
inline std::filesystem::path find_idx(const std::filesystem::path& dir, const std::string& stem) {
  for (const auto& name : {stem, stem + ".gz"})
    if (std::filesystem::exists(dir / name)) return dir / name;
  throw std::runtime_error(dir.string() + " has no " + stem + "[.gz]: it needs train-images-idx3-ubyte, " +
                           "train-labels-idx1-ubyte, t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (optionally " +
                           ".gz), e.g. from Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)");
}

// leanconv.train.datasets.FASHION_MEAN, FASHION_STD; the zero (background) pixel after normalisation.
inline constexpr double kMean = 0.2860, kStd = 0.3530, kBackground = (0.0 - kMean) / kStd;

// One split: (N, 1, 32, 32) float images, zero-padded from 28x28 and normalised as leanconv.train does, and (N,)
// int64 labels; `limit` > 0 keeps the first `limit`.
struct Split {
  torch::Tensor images, labels;
};

inline Split load_split(const std::filesystem::path& dir, bool train, int64_t limit) {
  const std::string prefix = train ? "train" : "t10k";
  torch::Tensor images = read_idx(find_idx(dir, prefix + "-images-idx3-ubyte"));
  torch::Tensor labels = read_idx(find_idx(dir, prefix + "-labels-idx1-ubyte"));
  if (images.dim() != 3 || labels.dim() != 1 || images.size(0) != labels.size(0))
    throw std::runtime_error(dir.string() + ": " + prefix + " images and labels do not match (" +
                             std::to_string(images.size(0)) + " images, " + std::to_string(labels.size(0)) + " labels)");
  if (limit > 0 && limit < images.size(0)) {
    images = images.slice(0, 0, limit);
    labels = labels.slice(0, 0, limit);
  }
  images = torch::constant_pad_nd(images.unsqueeze(1).to(torch::kFloat32).div(255), {2, 2, 2, 2});
  return {(images - kMean) / kStd, labels.to(torch::kLong)};
}

// The training augmentation of leanconv.train: a random crop of 32x32 from the image zero-padded (in pixel space, so
// the normalised background value) by 2 on each side, one offset per image.
inline torch::Tensor random_crop(const torch::Tensor& batch, int64_t padding = 2) {
  const int64_t h = batch.size(2), w = batch.size(3);
  torch::Tensor padded = torch::constant_pad_nd(batch, {padding, padding, padding, padding}, kBackground);
  torch::Tensor offsets = torch::randint(0, 2 * padding + 1, {batch.size(0), 2}, torch::kLong);
  auto out = torch::empty_like(batch);
  auto o = offsets.accessor<int64_t, 2>();
  for (int64_t i = 0; i < batch.size(0); ++i)
    out[i].copy_(padded[i].slice(1, o[i][0], o[i][0] + h).slice(2, o[i][1], o[i][1] + w));
  return out;
}

}  // namespace fashion_mnist
