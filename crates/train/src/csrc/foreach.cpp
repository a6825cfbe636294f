// PyTorch's multi-tensor ("foreach" and fused) optimizer kernels, which tch does not expose:
// one kernel launch over all parameters instead of several per parameter, as torch.optim and
// torch.amp do on CUDA. Each function takes arrays of tch tensor handles (`torch::Tensor*`).

#include <ATen/ATen.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

namespace {

std::vector<at::Tensor> tensors(const at::Tensor* const* handles, int64_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (int64_t i = 0; i < n; ++i) {
    out.push_back(*handles[i]);
  }
  return out;
}

void set_error(char** error, const char* message) {
  *error = static_cast<char*>(std::malloc(std::strlen(message) + 1));
  if (*error != nullptr) {
    std::strcpy(*error, message);
  }
}

}  // namespace

extern "C" {

// torch.optim.AdamW(fused=True): increments the step counts, then one fused update of every
// parameter. With `grad_scale`/`found_inf` (AMP), gradients are unscaled inside and the update
// is skipped where `found_inf` is set. Returns 0, or -1 with `*error` set (malloc'd).
int simcse_fused_adamw(const at::Tensor* const* params, const at::Tensor* const* grads,
                       const at::Tensor* const* exp_avgs, const at::Tensor* const* exp_avg_sqs,
                       const at::Tensor* const* steps, int64_t n, double lr, double beta1, double beta2,
                       double weight_decay, double eps, char** error) {
  try {
    auto step_tensors = tensors(steps, n);
    at::_foreach_add_(step_tensors, 1.0);
    at::_fused_adamw_(tensors(params, n), tensors(grads, n), tensors(exp_avgs, n), tensors(exp_avg_sqs, n),
                      /*max_exp_avg_sqs=*/{}, step_tensors, lr, beta1, beta2, weight_decay, eps,
                      /*amsgrad=*/false, /*maximize=*/false, /*grad_scale=*/std::nullopt,
                      /*found_inf=*/std::nullopt);
    return 0;
  } catch (const std::exception& e) {
    set_error(error, e.what());
    return -1;
  }
}

// torch.amp's unscale: gradients multiplied by `inv_scale` in place; `found_inf` (a float
// tensor of one element) set to 1 where any is inf or NaN.
int simcse_unscale(const at::Tensor* const* grads, int64_t n, const at::Tensor* found_inf,
                   const at::Tensor* inv_scale, char** error) {
  try {
    auto found = *found_inf;
    at::_amp_foreach_non_finite_check_and_unscale_(tensors(grads, n), found, *inv_scale);
    return 0;
  } catch (const std::exception& e) {
    set_error(error, e.what());
    return -1;
  }
}

// torch.nn.utils.clip_grad_norm_ (foreach): scales every gradient by
// min(1, max_norm / (total_norm + 1e-6)) and returns the total 2-norm as a new tensor handle.
at::Tensor* simcse_clip_grad_norm(const at::Tensor* const* grads, int64_t n, double max_norm, char** error) {
  try {
    auto list = tensors(grads, n);
    auto norms = at::_foreach_norm(list, 2);
    auto total = at::linalg_vector_norm(at::stack(norms), 2);
    auto coef = (max_norm / (total + 1e-6)).clamp_max(1.0);
    at::_foreach_mul_(list, coef);
    return new at::Tensor(total);
  } catch (const std::exception& e) {
    set_error(error, e.what());
    return nullptr;
  }
}

// optimizer.zero_grad(set_to_none=True): every parameter's gradient released, so that the next
// forward pass runs without them in memory (backward allocates them again as it reaches them).
int simcse_clear_grads(const at::Tensor* const* params, int64_t n, char** error) {
  try {
    for (int64_t i = 0; i < n; ++i) {
      params[i]->mutable_grad().reset();
    }
    return 0;
  } catch (const std::exception& e) {
    set_error(error, e.what());
    return -1;
  }
}

}  // extern "C"
