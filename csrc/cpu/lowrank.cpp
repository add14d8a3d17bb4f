// CPU kernels of the low-rank (DeCEF) eigen-filter conv, fused: for one tile of output rows of one image the
// depthwise stage writes z (C_in*R x pixels) into a thread-local buffer sized to stay in L2, and a GEMM with
// coeff turns it into the tile's output. z never reaches memory as a whole; the backward recomputes it tile by
// tile. Arithmetic runs in the op-math type (float for half/bfloat16); inputs and outputs are read and written
// through their strides, so channels_last needs no copies.
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/mm.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "common/lowrank_checks.h"
#include "common/conv_epilogue.h"
#include "common/lowrank.h"
#include "cpu/phased_rows.h"
#include "cpu/reduction_parts.h"
#include "cpu/window_tiles.h"
#include "composite/lowrank.h"

namespace leanconv::cpu {
namespace {

using checks::strides_of;
using common::EigenConv;
using common::Strides4;

// A tile's z holds about kTileElements values (256 KiB in float, so it stays in L2), but at least kMinPixels
// columns: the GEMMs lose their efficiency on narrower matrices, and in the backward every tile adds a
// rank-(pixels) update into the whole C_out x C_in*R coefficient gradient. Images smaller than kMinPixels go
// several to a tile.
constexpr int64_t kTileElements = int64_t(1) << 16;
constexpr int64_t kMinPixels = 256;
constexpr double kMaxPhasedElements = double(int64_t(1) << 24);  // one channel's phased input rows of a tile

int64_t padded_rank(const EigenConv& g) { return padded_filters(g.rank); }

// How the output is cut into tiles: `images` whole images per tile, or row bands of `rows` rows of one image.
struct TilePlan {
  int64_t images, rows, bands;  // bands: row bands per image (1 when a tile holds whole images)
  int64_t groups;               // image groups: ceil(batch / images)

  explicit TilePlan(const EigenConv& g) {
    const int64_t row_length = padded_row_length(g), image_pixels = g.out_h * row_length;
    const int64_t budget = std::max(kTileElements / g.mid_channels(), kMinPixels);  // pixels per tile
    if (image_pixels >= kMinPixels) {
      images = 1;
      rows = std::clamp<int64_t>(budget / row_length, 1, g.out_h);
    } else {
      images = std::clamp<int64_t>(budget / image_pixels, 1, std::max<int64_t>(g.batch, 1));
      rows = g.out_h;
    }
    bands = (g.out_h + rows - 1) / rows;
    groups = (g.batch + images - 1) / images;
  }
};

// Whether a tile's buffers fit in memory (phased_elements in cpu/phased_rows.h); layers that do not go to the
// aten composite instead.
bool tile_buffers_fit(const EigenConv& g) { return phased_elements(g, TilePlan(g).rows) <= kMaxPhasedElements; }

// basis as (C_in, R padded by padded_filters, taps) in op-math type, the extra rows zero.
at::Tensor padded_basis(const at::Tensor& basis, const EigenConv& g, at::ScalarType acc_type) {
  auto padded = at::zeros({g.in_channels, padded_rank(g), g.taps()}, basis.options().dtype(acc_type));
  padded.narrow(1, 0, g.rank).copy_(basis.detach().reshape({g.in_channels, g.rank, g.taps()}));
  return padded;
}

// A tile matrix has one column per output pixel: `segments` (= images x rows) output rows, each stored in
// row_length columns (padded to whole vectors, for the depthwise loops) or out_w columns (compact, for the GEMMs,
// which would otherwise multiply the padding too: 14% more work at 7 or 28 columns).
template <typename T>
void compact_columns(const T* padded, T* compact, int64_t matrix_rows, int64_t segments, int64_t out_w,
                     int64_t row_length) {
  for (int64_t r = 0; r < matrix_rows * segments; ++r) std::copy_n(padded + r * row_length, out_w, compact + r * out_w);
}

template <typename T>
void expand_columns(const T* compact, T* padded, int64_t matrix_rows, int64_t segments, int64_t out_w,
                    int64_t row_length) {
  for (int64_t r = 0; r < matrix_rows * segments; ++r) {
    std::copy_n(compact + r * out_w, out_w, padded + r * row_length);
    std::fill(padded + r * row_length + out_w, padded + (r + 1) * row_length, T(0));
  }
}

at::Tensor matrix(void* data, int64_t rows, int64_t cols, at::ScalarType type) {
  return at::from_blob(data, {rows, cols}, at::TensorOptions().dtype(type));
}

// The depthwise stage of one image's part of a tile: rows (c*R + r)*z_stride of z, t.pixels() columns from z.
template <typename scalar_t, typename acc_t>
void depthwise_tile(const scalar_t* x, const Strides4& xs, const acc_t* basis, const EigenConv& g,
                    const WindowTile& t, int64_t row0, acc_t* phased, acc_t* z, int64_t z_stride) {
  const int64_t basis_stride = padded_rank(g) * g.taps();
  for (int64_t c = 0; c < g.in_channels; ++c) {
    fill_phased(x, xs, c, g, t, row0, phased);
    window_forward(t, phased, 1, basis + c * basis_stride, z + c * g.rank * z_stride, z_stride);
  }
}

// What the forward's tiles read and write: the input and output through their strides, basis and coeff in the
// op-math type (basis padded as padded_basis), the bias through the epilogue.
template <typename scalar_t, typename acc_t>
struct ForwardOperands {
  const scalar_t* x;
  Strides4 xs;
  const acc_t* basis;
  at::Tensor coeff;  // (C_out, C_in*R), contiguous
  common::Epilogue<acc_t> epilogue;
  scalar_t* y;
  Strides4 ys;
};

// One thread's buffers for the forward's tiles: the phased input rows of one channel, the tile's z and output, and
// z with its columns compacted for the GEMM where the rows are padded.
template <typename acc_t>
struct ForwardBuffers {
  ForwardBuffers(const EigenConv& g, const TilePlan& plan, const BandTiles& tiles)
      : compact(tiles.full.row_length != g.out_w),
        phased(tiles.full.phased_size()),
        z(g.mid_channels() * plan.images * tiles.full.pixels()),
        y_tile(g.out_channels * plan.images * tiles.full.pixels()),
        z_compact(compact ? z.size() : 0) {}
  bool compact;
  std::vector<acc_t> phased, z, y_tile, z_compact;
};

// Tile `index` of the forward (an image group's row band): the depthwise stage of each of its images into z, one
// GEMM with coeff, and the output rows through the epilogue.
template <typename scalar_t, typename acc_t>
void forward_tile(const EigenConv& g, const TilePlan& plan, const BandTiles& tiles,
                  const ForwardOperands<scalar_t, acc_t>& op, int64_t index, ForwardBuffers<acc_t>& b) {
  const auto acc_type = c10::CppTypeToScalarType<acc_t>::value;
  const int64_t mid = g.mid_channels();
  const int64_t n0 = (index / plan.bands) * plan.images, band = index % plan.bands, row0 = tiles.first_row(band);
  const int64_t images = std::min(plan.images, g.batch - n0);
  const auto& t = tiles.of(band);
  const int64_t pixels = images * t.pixels();  // z columns: image-major, then padded rows
  for (int64_t k = 0; k < images; ++k)
    depthwise_tile(op.x + (n0 + k) * op.xs.n, op.xs, op.basis, g, t, row0, b.phased.data(), b.z.data() + k * t.pixels(),
                   pixels);
  const int64_t segments = images * t.rows, gemm_row = b.compact ? g.out_w : t.row_length;
  const int64_t gemm_pixels = segments * gemm_row;
  if (b.compact) compact_columns(b.z.data(), b.z_compact.data(), mid, segments, g.out_w, t.row_length);
  auto y_matrix = matrix(b.y_tile.data(), g.out_channels, gemm_pixels, acc_type);
  at::mm_out(y_matrix, op.coeff, matrix(b.compact ? b.z_compact.data() : b.z.data(), mid, gemm_pixels, acc_type));
  for (int64_t k = 0; k < images; ++k)
    store_rows(b.y_tile.data() + k * t.rows * gemm_row, gemm_pixels, gemm_row, g.out_channels, t.rows, g.out_w,
               op.epilogue, 0, row0, op.y + (n0 + k) * op.ys.n, op.ys);
}

at::Tensor eigen_conv2d_kernel(const at::Tensor& input, const at::Tensor& basis, const at::Tensor& coeff,
                               const std::optional<at::Tensor>& bias, at::IntArrayRef stride, at::IntArrayRef padding,
                               at::IntArrayRef dilation) {
  const auto g = checks::eigen_conv_geometry(input, basis, coeff, bias, stride, padding, dilation);
  auto output = at::empty({g.batch, g.out_channels, g.out_h, g.out_w},
                          input.options().memory_format(input.suggest_memory_format()));
  if (output.numel() == 0) return output;
  if (!tile_buffers_fit(g)) return composite::eigen_conv2d_composite(input, basis, coeff, bias, stride, padding, dilation);
  const auto acc_type = at::toOpMathType(input.scalar_type());
  const auto basis_acc = padded_basis(basis, g, acc_type);
  const bool has_bias = bias.has_value() && bias->defined();
  const auto bias_acc = has_bias ? bias->detach().to(acc_type).contiguous() : at::Tensor();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "eigen_conv2d_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const TilePlan plan(g);
    const BandTiles tiles(g, plan.rows, g.rank);
    const ForwardOperands<scalar_t, acc_t> op{
        input.const_data_ptr<scalar_t>(), strides_of(input), basis_acc.const_data_ptr<acc_t>(),
        coeff.detach().to(acc_type).contiguous(),
        common::Epilogue<acc_t>::bias(has_bias ? bias_acc.const_data_ptr<acc_t>() : nullptr),
        output.mutable_data_ptr<scalar_t>(), strides_of(output)};
    const int64_t tasks = plan.groups * plan.bands;
    at::parallel_for(0, parallel_tasks(tasks), 1, [&](int64_t begin, int64_t task_end) {
      // Worker threads do not inherit the caller's dispatch state: the GEMMs must not reach autograd.
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      ForwardBuffers<acc_t> buffers(g, plan, tiles);
      for (int64_t index = begin; index < std::min(task_end, tasks); ++index)
        forward_tile(g, plan, tiles, op, index, buffers);
    });
  });
  return output;
}

// ---- backward ------------------------------------------------------------------------------------------------
// Image groups go to `parts` chunks, each with its own partial sums of the basis and coefficient gradients, added
// in chunk order at the end. Within a chunk, an image group's bands run in turn: the tile's output gradient, z
// recomputed from the phased input (for the coefficient gradient), z's gradient by a GEMM with coeff, and from it
// the basis gradient and, through the micro-kernels' adjoint, the input gradient.

// What every chunk of one backward call reads and writes.
template <typename scalar_t, typename acc_t>
struct EigenBackwardOperands {
  const EigenConv& g;
  const TilePlan& plan;
  const BandTiles& tiles;
  bool need_input, need_basis, need_coeff;
  at::ScalarType acc_type;
  const scalar_t* x;
  Strides4 xs;
  const scalar_t* grad_y;
  Strides4 gys;
  scalar_t* grad_x;  // null when the input gradient is not asked for
  Strides4 gxs;
  const acc_t* basis;  // padded_basis: filter rows basis_stride apart per input channel
  int64_t basis_stride;
  at::Tensor coeff_t;  // (C_in*R, C_out): a transposed view BLAS reads directly

  int64_t image() const { return g.in_channels * g.in_h * g.in_w; }  // one image of the input gradient
  bool compact() const { return tiles.full.row_length != g.out_w; }  // see compact_columns
};

// A chunk's working buffers, sized for a full tile: every image's phased input channels (kept from the z
// recompute for the basis gradient), z and its gradient in the padded and the compact column layouts, the tile's
// output gradient, and the image group's input gradient.
template <typename acc_t>
struct EigenBackwardBuffers {
  std::vector<acc_t> phased, grad_phased, z, gz, gy, z_compact, gz_compact, gx;

  template <typename scalar_t>
  explicit EigenBackwardBuffers(const EigenBackwardOperands<scalar_t, acc_t>& op) {
    const auto& g = op.g;
    const int64_t mid = g.mid_channels(), capacity = op.plan.images * op.tiles.full.pixels();
    phased.resize(op.plan.images * g.in_channels * op.tiles.full.phased_size());
    grad_phased.resize(op.tiles.full.phased_size());
    z.resize(op.need_coeff ? mid * capacity : 0);
    gz.resize(mid * capacity);
    gy.resize(g.out_channels * capacity);
    z_compact.resize(op.compact() && op.need_coeff ? mid * capacity : 0);
    gz_compact.resize(op.compact() ? mid * capacity : 0);
    gx.resize(op.need_input ? op.plan.images * op.image() : 0);
  }
};

// One band of rows of an image group, and the widths of its matrices (columns image-major, then output rows).
struct EigenTile {
  const WindowTile& t;
  int64_t n0, images, row0;
  int64_t pixels;       // z columns in the padded layout: images * t.pixels()
  int64_t segments;     // output rows in the tile: images * t.rows
  int64_t gemm_row;     // columns of an output row in the GEMMs' layout: out_w when compact, else t.row_length
  int64_t gemm_pixels;  // segments * gemm_row
};

template <typename scalar_t, typename acc_t>
EigenTile eigen_tile(const EigenBackwardOperands<scalar_t, acc_t>& op, int64_t n0, int64_t images, int64_t band) {
  const auto& t = op.tiles.of(band);
  const int64_t segments = images * t.rows, gemm_row = op.compact() ? op.g.out_w : t.row_length;
  return {t, n0, images, op.tiles.first_row(band), images * t.pixels(), segments, gemm_row, segments * gemm_row};
}

// The tile's output gradient in the GEMMs' layout, in op-math type (zero in any padding columns).
template <typename scalar_t, typename acc_t>
void load_tile_grad_output(const EigenBackwardOperands<scalar_t, acc_t>& op, const EigenTile& tile, acc_t* gy) {
  for (int64_t k = 0; k < tile.images; ++k) {
    load_rows(op.grad_y + (tile.n0 + k) * op.gys.n, op.gys, op.g.out_channels, tile.row0, tile.t.rows, op.g.out_w,
              gy + k * tile.t.rows * tile.gemm_row, tile.gemm_pixels, tile.gemm_row);
  }
}

// Phases every image's input channels under the tile into their kept buffers and, when the coefficient gradient
// is asked for, recomputes the tile's z from them.
template <typename scalar_t, typename acc_t>
void phase_input_and_recompute_z(const EigenBackwardOperands<scalar_t, acc_t>& op, const EigenTile& tile,
                                 EigenBackwardBuffers<acc_t>& b) {
  const auto& g = op.g;
  for (int64_t k = 0; k < tile.images; ++k) {
    for (int64_t c = 0; c < g.in_channels; ++c) {
      acc_t* phased_kc = b.phased.data() + (k * g.in_channels + c) * op.tiles.full.phased_size();
      fill_phased(op.x + (tile.n0 + k) * op.xs.n, op.xs, c, g, tile.t, tile.row0, phased_kc);
      if (op.need_coeff) {
        window_forward(tile.t, phased_kc, 1, op.basis + c * op.basis_stride,
                       b.z.data() + c * g.rank * tile.pixels + k * tile.t.pixels(), tile.pixels);
      }
    }
  }
}

// grad_coeff += gy z^T over the tile's pixels.
template <typename scalar_t, typename acc_t>
void add_coeff_grad(const EigenBackwardOperands<scalar_t, acc_t>& op, const EigenTile& tile,
                    EigenBackwardBuffers<acc_t>& b, const at::Tensor& gy_matrix, at::Tensor& grad_coeff) {
  const int64_t mid = op.g.mid_channels();
  if (op.compact()) compact_columns(b.z.data(), b.z_compact.data(), mid, tile.segments, op.g.out_w, tile.t.row_length);
  const auto z_matrix = matrix(op.compact() ? b.z_compact.data() : b.z.data(), mid, tile.gemm_pixels, op.acc_type);
  grad_coeff.addmm_(gy_matrix, z_matrix.t());
}

// z's gradient coeff^T gy, left in b.gz in the padded layout the micro-kernels read.
template <typename scalar_t, typename acc_t>
void compute_z_grad(const EigenBackwardOperands<scalar_t, acc_t>& op, const EigenTile& tile,
                    EigenBackwardBuffers<acc_t>& b, const at::Tensor& gy_matrix) {
  const int64_t mid = op.g.mid_channels();
  auto gz_matrix = matrix(op.compact() ? b.gz_compact.data() : b.gz.data(), mid, tile.gemm_pixels, op.acc_type);
  at::mm_out(gz_matrix, op.coeff_t, gy_matrix);
  if (op.compact()) expand_columns(b.gz_compact.data(), b.gz.data(), mid, tile.segments, op.g.out_w, tile.t.row_length);
}

// Input channel c of image k's share of the input gradient: the micro-kernels' adjoint of its z rows' gradient,
// added from its phased buffer into the image's gradient.
template <typename scalar_t, typename acc_t>
void add_channel_input_grad(const EigenBackwardOperands<scalar_t, acc_t>& op, const EigenTile& tile, int64_t k,
                            int64_t c, const acc_t* gz_kc, EigenBackwardBuffers<acc_t>& b) {
  std::fill(b.grad_phased.begin(), b.grad_phased.end(), acc_t(0));
  window_input_grad(tile.t, gz_kc, tile.pixels, 1, op.basis + c * op.basis_stride, b.grad_phased.data());
  add_phased(b.grad_phased.data(), c, op.g, tile.t, tile.row0, b.gx.data() + k * op.image());
}

// From z's gradient, channel by channel: the basis gradient (against the kept phased input) and the input gradient.
template <typename scalar_t, typename acc_t>
void add_basis_and_input_grads(const EigenBackwardOperands<scalar_t, acc_t>& op, const EigenTile& tile,
                               EigenBackwardBuffers<acc_t>& b, acc_t* grad_basis) {
  const auto& g = op.g;
  for (int64_t k = 0; k < tile.images; ++k) {
    for (int64_t c = 0; c < g.in_channels; ++c) {
      const acc_t* gz_kc = b.gz.data() + c * g.rank * tile.pixels + k * tile.t.pixels();
      if (op.need_basis) {
        window_weight_grad(tile.t, b.phased.data() + (k * g.in_channels + c) * op.tiles.full.phased_size(), 1, gz_kc,
                           tile.pixels, grad_basis + c * op.basis_stride);
      }
      if (op.need_input) add_channel_input_grad(op, tile, k, c, gz_kc, b);
    }
  }
}

// Every gradient's share from one tile.
template <typename scalar_t, typename acc_t>
void backward_tile(const EigenBackwardOperands<scalar_t, acc_t>& op, const EigenTile& tile,
                   EigenBackwardBuffers<acc_t>& b, acc_t* grad_basis, at::Tensor& grad_coeff) {
  load_tile_grad_output(op, tile, b.gy.data());
  const auto gy_matrix = matrix(b.gy.data(), op.g.out_channels, tile.gemm_pixels, op.acc_type);
  phase_input_and_recompute_z(op, tile, b);
  if (op.need_coeff) add_coeff_grad(op, tile, b, gy_matrix, grad_coeff);
  if (!op.need_input && !op.need_basis) return;
  compute_z_grad(op, tile, b, gy_matrix);
  add_basis_and_input_grads(op, tile, b, grad_basis);
}

// One group of whole images, band by band; its input gradient collects in b.gx and is stored once complete.
template <typename scalar_t, typename acc_t>
void backward_image_group(const EigenBackwardOperands<scalar_t, acc_t>& op, int64_t group,
                          EigenBackwardBuffers<acc_t>& b, acc_t* grad_basis, at::Tensor& grad_coeff) {
  const int64_t n0 = group * op.plan.images, images = std::min(op.plan.images, op.g.batch - n0);
  std::fill(b.gx.begin(), b.gx.end(), acc_t(0));
  for (int64_t band = 0; band < op.plan.bands; ++band) {
    backward_tile(op, eigen_tile(op, n0, images, band), b, grad_basis, grad_coeff);
  }
  if (!op.need_input) return;
  for (int64_t k = 0; k < images; ++k) {
    store_channels(b.gx.data() + k * op.image(), op.g.in_channels, op.g, op.grad_x + (n0 + k) * op.gxs.n, op.gxs);
  }
}

// Chunk `part` of `parts`: a contiguous run of image groups (and so the grad_input images it writes), into the
// chunk's own partial sums.
template <typename scalar_t, typename acc_t>
void backward_part(const EigenBackwardOperands<scalar_t, acc_t>& op, int64_t part, int64_t parts,
                   at::Tensor& grad_basis_parts, at::Tensor& grad_coeff_parts) {
  const int64_t begin = part * op.plan.groups / parts, end = (part + 1) * op.plan.groups / parts;
  acc_t* grad_basis = grad_basis_parts[part].mutable_data_ptr<acc_t>();
  auto grad_coeff = grad_coeff_parts[part];
  EigenBackwardBuffers<acc_t> buffers(op);
  for (int64_t group = begin; group < end; ++group) backward_image_group(op, group, buffers, grad_basis, grad_coeff);
}

template <typename scalar_t, typename acc_t>
void backward_parts(const EigenBackwardOperands<scalar_t, acc_t>& op, int64_t parts, at::Tensor& grad_basis_parts,
                    at::Tensor& grad_coeff_parts) {
  at::parallel_for(0, parallel_tasks(parts), 1, [&](int64_t part_begin, int64_t part_end) {
    // Worker threads do not inherit the caller's dispatch state: the GEMMs must not reach autograd.
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    for (int64_t part = part_begin; part < std::min(part_end, parts); ++part) {
      backward_part(op, part, parts, grad_basis_parts, grad_coeff_parts);
    }
  });
}

// The partial sums added in chunk order, as contiguous results in the operand's dtype, as the fake kernel promises
// (torch.compile checks the strides): the padded rank rows are dropped by a copy, not a view.
at::Tensor summed_basis_grad(const at::Tensor& parts, const EigenConv& g, const at::Tensor& basis) {
  return in_order_sum(parts).narrow(1, 0, g.rank).reshape(basis.sizes()).to(basis.scalar_type()).contiguous();
}

at::Tensor summed_coeff_grad(const at::Tensor& parts, const at::Tensor& coeff) {
  return in_order_sum(parts).to(coeff.scalar_type()).contiguous();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> eigen_conv2d_backward_kernel(
    const at::Tensor& grad_output, const at::Tensor& input, const at::Tensor& basis, const at::Tensor& coeff,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation, std::array<bool, 3> output_mask) {
  const auto g = checks::eigen_conv_backward_geometry(grad_output, input, basis, coeff, stride, padding, dilation);
  if (g.batch > 0 && !tile_buffers_fit(g)) {
    return composite::eigen_conv2d_backward_composite(grad_output, input, basis, coeff, stride, padding, dilation,
                                                output_mask);
  }
  const bool need_input = output_mask[0], need_basis = output_mask[1], need_coeff = output_mask[2];
  const auto acc_type = at::toOpMathType(input.scalar_type());
  const TilePlan plan(g);
  // One chunk per thread; under torch.use_deterministic_algorithms a fixed number, so the sums do not depend on
  // the thread count.
  const int64_t parts = reduction_parts(plan.groups);
  auto grad_basis_parts = at::zeros({parts, g.in_channels, padded_rank(g), g.taps()}, basis.options().dtype(acc_type));
  auto grad_coeff_parts = at::zeros({parts, g.out_channels, g.mid_channels()}, coeff.options().dtype(acc_type));
  auto grad_input =
      need_input ? at::empty(input.sizes(), input.options().memory_format(input.suggest_memory_format())) : at::Tensor();
  if (g.batch > 0) {
    const auto basis_acc = padded_basis(basis, g, acc_type);
    const BandTiles tiles(g, plan.rows, g.rank);
    AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, input.scalar_type(), "eigen_conv2d_backward_cpu", [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const EigenBackwardOperands<scalar_t, acc_t> op{
          .g = g, .plan = plan, .tiles = tiles,
          .need_input = need_input, .need_basis = need_basis, .need_coeff = need_coeff, .acc_type = acc_type,
          .x = input.const_data_ptr<scalar_t>(), .xs = strides_of(input),
          .grad_y = grad_output.const_data_ptr<scalar_t>(), .gys = strides_of(grad_output),
          .grad_x = need_input ? grad_input.mutable_data_ptr<scalar_t>() : nullptr,
          .gxs = need_input ? strides_of(grad_input) : Strides4{},
          .basis = basis_acc.const_data_ptr<acc_t>(), .basis_stride = padded_rank(g) * g.taps(),
          .coeff_t = coeff.detach().to(acc_type).t()};
      backward_parts(op, parts, grad_basis_parts, grad_coeff_parts);
    });
  }
  return {grad_input, need_basis ? summed_basis_grad(grad_basis_parts, g, basis) : at::Tensor(),
          need_coeff ? summed_coeff_grad(grad_coeff_parts, coeff) : at::Tensor()};
}

}  // namespace

TORCH_LIBRARY_IMPL(leanconv, CPU, m) {
  m.impl("eigen_conv2d", &eigen_conv2d_kernel);
  m.impl("eigen_conv2d_backward", &eigen_conv2d_backward_kernel);
}

}  // namespace leanconv::cpu
