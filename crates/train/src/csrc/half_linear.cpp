// The hand-written half-precision linear layer (DESIGN.md, "The hand-written fp16 linear"):
// a libtorch custom autograd function whose forward and backward GEMMs run in fp16 (or bf16),
// with the weights' gradients returned in fp32 to the fp32 master weights.
//
//   forward   y  = x W^T + b            (x, W, b cast to half; cuBLAS accumulates in fp32)
//   backward  dx = g W,  dW = g^T x,  db = sum over rows of g   (in half; dW, db returned as fp32)
//
// Called from Rust through a C function that takes and returns tch's tensor handles
// (`torch::Tensor*`), so that tch owns the result.

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdlib>
#include <cstring>
#include <exception>

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

namespace {

struct HalfLinear : public torch::autograd::Function<HalfLinear> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, bool bf16) {
    const auto half = bf16 ? at::kBFloat16 : at::kHalf;
    const auto x_half = x.to(half);
    const auto w_half = weight.to(half);
    ctx->save_for_backward({x_half, w_half});
    ctx->saved_data["x_dtype"] = static_cast<int64_t>(x.scalar_type());
    ctx->saved_data["has_bias"] = bias.defined();
    // at::linear fuses the bias into the GEMM (cuBLASLt's epilogue on CUDA).
    return at::linear(x_half, w_half, bias.defined() ? bias.to(half) : at::Tensor());
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const auto& x_half = saved[0];
    const auto& w_half = saved[1];
    const auto g = grad_outputs[0].to(w_half.scalar_type());
    const auto out_features = w_half.size(0);
    const auto in_features = w_half.size(1);
    const auto g2 = g.reshape({-1, out_features});
    const auto x2 = x_half.reshape({-1, in_features});
    const auto x_dtype = static_cast<at::ScalarType>(ctx->saved_data["x_dtype"].toInt());
    auto dx = at::matmul(g, w_half).to(x_dtype);
    auto dw = at::matmul(g2.t(), x2).to(at::kFloat);
    auto db = ctx->saved_data["has_bias"].toBool() ? g2.sum(0).to(at::kFloat) : at::Tensor();
    return {dx, dw, db, at::Tensor()};
  }
};

// The same without a bias (Llama's projections): autograd's apply takes no undefined tensor.
struct HalfLinearNoBias : public torch::autograd::Function<HalfLinearNoBias> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight, bool bf16) {
    return HalfLinear::forward(ctx, x, weight, at::Tensor(), bf16);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    auto grads = HalfLinear::backward(ctx, std::move(grad_outputs));
    return {grads[0], grads[1], at::Tensor()};
  }
};

char* copy_message(const char* message) {
  char* copy = static_cast<char*>(std::malloc(std::strlen(message) + 1));
  if (copy != nullptr) {
    std::strcpy(copy, message);
  }
  return copy;
}

}  // namespace

extern "C" {

// y = x W^T + b through HalfLinear. `bias` may be null. On failure returns null and sets
// `*error` to a malloc'd message the caller frees.
at::Tensor* simcse_half_linear(const at::Tensor* x, const at::Tensor* weight, const at::Tensor* bias,
                               int bf16, char** error) {
  try {
    auto y = bias != nullptr ? HalfLinear::apply(*x, *weight, *bias, bf16 != 0)
                             : HalfLinearNoBias::apply(*x, *weight, bf16 != 0);
    return new at::Tensor(std::move(y));
  } catch (const std::exception& e) {
    *error = copy_message(e.what());
    return nullptr;
  }
}

}  // extern "C"
