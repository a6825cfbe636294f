// libtorch's own reader of torch.save's format (`torch::pickle_load`: the C++ PyTorchStreamReader
// and unpickler that torch.load's zip path shares), so that the pytorch_model.bin the trainer
// writes is checked by PyTorch's code, not only by ours.
#include <torch/csrc/jit/serialization/pickle.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <vector>

namespace {
char* copy_text(const char* text) {
  size_t n = std::strlen(text) + 1;
  char* out = static_cast<char*>(std::malloc(n));
  if (out != nullptr) std::memcpy(out, text, n);
  return out;
}
}  // namespace

extern "C" {

typedef void (*simcse_tensor_sink)(void* context, const char* name, at::Tensor* tensor);

// Loads a state dict (a dict of str -> tensor) from torch.save bytes, calling `sink` with each
// entry (the tensor is new; the callee owns it). Returns 0, or -1 with `*error` malloc'd.
int simcse_pickle_load(const char* data, size_t len, simcse_tensor_sink sink, void* context, char** error) {
  try {
    std::vector<char> bytes(data, data + len);
    auto value = torch::jit::pickle_load(bytes);
    for (const auto& entry : value.toGenericDict()) {
      sink(context, entry.key().toStringRef().c_str(), new at::Tensor(entry.value().toTensor()));
    }
    return 0;
  } catch (const std::exception& e) {
    *error = copy_text(e.what());
    return -1;
  }
}

}  // extern "C"
