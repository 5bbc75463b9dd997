// Activation functions: the one place that defines each function's value and derivative. The scalar reference
// (act_value / act_derivative), the fast kernels (act_forward / act_backward) and the plots all call these.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rectifier {

enum class Act { identity, relu, leaky_relu, elu, selu, gelu, silu, relu6, softplus, mish, sigmoid, tanh };

// An activation and its one parameter:
//   relu: `param` is ReLU'(0) (0 by default, as PyTorch and TensorFlow);  leaky_relu: negative slope (0.01);
//   elu: alpha (1);  softplus: beta (1, threshold 20 as PyTorch);  others: unused.
struct Activation {
  Act kind = Act::relu;
  double param = 0;
};

Activation default_activation(Act kind);
// Parses "relu", "leaky_relu", "leaky_relu(0.1)", "relu(prime0=1)", "swish", ... ; nullopt when unknown.
std::optional<Activation> parse_activation(std::string_view text);
std::string activation_name(Act kind);
// The canonical text of an activation with its parameter when it is not the default, e.g. "leaky_relu(0.1)".
std::string activation_spec(const Activation& a);
// Every name parse_activation accepts first-hand (aliases excluded), in a stable order.
const std::vector<std::string>& activation_names();

namespace act_math {
constexpr double kSeluLambda = 1.0507009873554805, kSeluAlpha = 1.6732632423543772;
template <class T> inline T sigmoid(T x) {
  if (x >= 0) return T(1) / (T(1) + std::exp(-x));
  T e = std::exp(x);
  return e / (T(1) + e);
}
template <class T> inline T softplus(T x, T beta) {  // PyTorch's: linear above beta*x > 20
  T bx = beta * x;
  return bx > T(20) ? x : std::log1p(std::exp(bx)) / beta;
}
}  // namespace act_math

// Value of activation K at x; p is the Activation's param.
template <Act K, class T>
inline T act_value_k(T x, T p) {
  using namespace act_math;
  if constexpr (K == Act::identity) return x;
  else if constexpr (K == Act::relu) return x < T(0) ? T(0) : x;  // NaN passes through, as in PyTorch
  else if constexpr (K == Act::leaky_relu) return x > T(0) ? x : p * x;
  else if constexpr (K == Act::elu) return x > T(0) ? x : p * std::expm1(x);
  else if constexpr (K == Act::selu) return T(kSeluLambda) * (x > T(0) ? x : T(kSeluAlpha) * std::expm1(x));
  else if constexpr (K == Act::gelu) return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440)));
  else if constexpr (K == Act::silu) return x * sigmoid(x);
  else if constexpr (K == Act::relu6) return x <= T(0) ? T(0) : (x >= T(6) ? T(6) : x);
  else if constexpr (K == Act::softplus) return softplus(x, p);
  else if constexpr (K == Act::mish) return x * std::tanh(softplus(x, T(1)));
  else if constexpr (K == Act::sigmoid) return sigmoid(x);
  else return std::tanh(x);
}

// Derivative of activation K at x. At kinks it takes the value PyTorch's backward takes: ReLU'(0) = p (default 0),
// leaky_relu'(0) = slope, relu6'(0) = relu6'(6) = 0.
template <Act K, class T>
inline T act_derivative_k(T x, T p) {
  using namespace act_math;
  if constexpr (K == Act::identity) return T(1);
  else if constexpr (K == Act::relu) return x > T(0) ? T(1) : (x == T(0) ? p : T(0));
  else if constexpr (K == Act::leaky_relu) return x > T(0) ? T(1) : p;
  else if constexpr (K == Act::elu) return x > T(0) ? T(1) : p * std::exp(x);
  else if constexpr (K == Act::selu) return T(kSeluLambda) * (x > T(0) ? T(1) : T(kSeluAlpha) * std::exp(x));
  else if constexpr (K == Act::gelu)
    return T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440))) +
           x * T(0.39894228040143267794) * std::exp(T(-0.5) * x * x);
  else if constexpr (K == Act::silu) { T s = sigmoid(x); return s * (T(1) + x * (T(1) - s)); }
  else if constexpr (K == Act::relu6) return (x > T(0) && x < T(6)) ? T(1) : T(0);
  else if constexpr (K == Act::softplus) return p * x > T(20) ? T(1) : sigmoid(p * x);
  else if constexpr (K == Act::mish) {
    T t = std::tanh(softplus(x, T(1)));
    return t + x * (T(1) - t * t) * sigmoid(x);
  } else if constexpr (K == Act::sigmoid) { T s = sigmoid(x); return s * (T(1) - s); }
  else { T t = std::tanh(x); return T(1) - t * t; }
}

// Calls f.template operator()<K>() with the compile-time kind matching `kind`: the switch sits outside the loops.
template <class F>
inline decltype(auto) dispatch_act(Act kind, F&& f) {
  switch (kind) {
    case Act::identity: return f.template operator()<Act::identity>();
    case Act::relu: return f.template operator()<Act::relu>();
    case Act::leaky_relu: return f.template operator()<Act::leaky_relu>();
    case Act::elu: return f.template operator()<Act::elu>();
    case Act::selu: return f.template operator()<Act::selu>();
    case Act::gelu: return f.template operator()<Act::gelu>();
    case Act::silu: return f.template operator()<Act::silu>();
    case Act::relu6: return f.template operator()<Act::relu6>();
    case Act::softplus: return f.template operator()<Act::softplus>();
    case Act::mish: return f.template operator()<Act::mish>();
    case Act::sigmoid: return f.template operator()<Act::sigmoid>();
    case Act::tanh: break;
  }
  return f.template operator()<Act::tanh>();
}

// The scalar reference: one element at a time. The test oracle for the kernels below, and what plots use.
template <class T>
inline T act_value(const Activation& a, T x) {
  return dispatch_act(a.kind, [&]<Act K>() { return act_value_k<K, T>(x, T(a.param)); });
}
template <class T>
inline T act_derivative(const Activation& a, T x) {
  return dispatch_act(a.kind, [&]<Act K>() { return act_derivative_k<K, T>(x, T(a.param)); });
}

// Fast kernels (src/kernels/activation_kernels.cpp): SIMD with run-time dispatch where it pays, OpenMP over blocks.
// x, y, dy, dx: (n)
template <class T> void act_forward(const Activation& a, const T* x, T* y, size_t n);
// dx = dy * f'(x). x is the activation's input (pre-activation).
template <class T> void act_backward(const Activation& a, const T* x, const T* dy, T* dx, size_t n);

// ReLU (ReLU'(0) = 0) in float, the hot path: Highway SIMD for the best target of the running CPU.
// relu_forward keeps a 1-bit mask of x > 0 when `mask` is not null (relu_mask_bytes(n) bytes);
// relu_backward_mask then computes dx = dy * [x > 0] reading the mask instead of x.
size_t relu_mask_bytes(size_t n);
void relu_forward(const float* x, float* y, uint8_t* mask, size_t n);
void relu_backward(const float* x, const float* dy, float* dx, size_t n);
void relu_backward_mask(const uint8_t* mask, const float* dy, float* dx, size_t n);
// Half the last-level cache (read from Linux's sysfs; 8 MB without it). A pass whose arrays together exceed twice
// this writes its output with streaming stores, which bypass the cache: the forward and the backward from the mask
// (two float arrays) from n floats over relu_stream_bytes() / 4, the backward from x (three) from two thirds of that.
size_t relu_stream_bytes();

// Sigmoid and tanh forward in float with SIMD (Highway, run-time dispatch); act_forward uses them.
void sigmoid_forward(const float* x, float* y, size_t n);
void tanh_forward(const float* x, float* y, size_t n);
// The other activations in float with SIMD (Highway): forward (leaky ReLU, ReLU6, ELU, SELU, GELU, SiLU, softplus,
// mish) and backward dx = dy * f'(x) from the input (those, plus ReLU with any ReLU'(0), sigmoid and tanh). Return
// false, doing nothing, for the activations they do not cover.
bool smooth_forward(const Activation& a, const float* x, float* y, size_t n);
bool smooth_backward(const Activation& a, const float* x, const float* dy, float* dx, size_t n);
// dx = dy * f'(x) computed from the output y = f(x), for the activations whose derivative is a function of the
// output (sigmoid: y(1-y), tanh: 1-y^2). Returns false, doing nothing, for the others.
template <class T> bool act_backward_from_output(const Activation& a, const T* y, const T* dy, T* dx, size_t n);

}  // namespace rectifier
