// Shapes and aligned buffers: the only containers the hot paths see.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

namespace rectifier {

// Allocations of at least 2 MB: aligned to 2 MB and, on Linux, marked for transparent huge pages (madvise) before
// any page is touched, so that the kernel backs them with 2 MB pages where it can (THP "always" or "madvise"; a
// no-op under "never"). One huge page maps what takes 512 TLB entries with 4 KB pages: a training set's images,
// read a row at a time in shuffled order, otherwise cost a page walk for almost every row.
void* alloc_huge(size_t bytes);  // throws std::bad_alloc
void free_huge(void* p) noexcept;
inline constexpr size_t kHugePage = size_t(2) << 20;

// A std::allocator whose large blocks come from alloc_huge (data sets' storage)
template <class T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}
  T* allocate(size_t n) {
    if (n * sizeof(T) < kHugePage) return std::allocator<T>{}.allocate(n);
    return static_cast<T*>(alloc_huge(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) noexcept {
    if (n * sizeof(T) < kHugePage) std::allocator<T>{}.deallocate(p, n);
    else free_huge(p);
  }
  template <class U>
  bool operator==(const HugePageAllocator<U>&) const noexcept { return true; }
};
template <class T>
using HugeVector = std::vector<T, HugePageAllocator<T>>;

// Shape of one example, without the batch dimension: {784} for a vector, {C, H, W} for an image (NCHW in batches).
using Shape = std::vector<int>;

inline size_t numel(const Shape& s) {
  size_t n = 1;
  for (int d : s) n *= static_cast<size_t>(d);
  return n;
}

// "[1, 28, 28]"
std::string shape_str(const Shape& s);

// A 64-byte aligned array sized once and reused: the training loop never allocates. From 2 MB up it comes from
// alloc_huge: a streaming kernel's hardware prefetch then runs on across what would be 4 KB page boundaries.
template <class T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t n) { resize(n); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : p_(o.p_), n_(o.n_) { o.p_ = nullptr; o.n_ = 0; }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) { std::free(p_); p_ = o.p_; n_ = o.n_; o.p_ = nullptr; o.n_ = 0; }
    return *this;
  }
  ~Buffer() { std::free(p_); }

  // Reallocates (zero-filled) only when n differs from the current size.
  void resize(size_t n) {
    if (n == n_) return;
    std::free(p_);
    p_ = nullptr;
    n_ = n;
    if (n == 0) return;
    size_t bytes = (n * sizeof(T) + 63) / 64 * 64;
    if (bytes >= kHugePage) {
      p_ = static_cast<T*>(alloc_huge(bytes));  // std::free releases it as well
    } else {
      p_ = static_cast<T*>(std::aligned_alloc(64, bytes));
      if (!p_) throw std::bad_alloc();
    }
    std::memset(static_cast<void*>(p_), 0, bytes);
  }
  void zero() { if (n_) std::memset(static_cast<void*>(p_), 0, n_ * sizeof(T)); }
  T* data() { return p_; }
  const T* data() const { return p_; }
  size_t size() const { return n_; }
  T& operator[](size_t i) { return p_[i]; }
  const T& operator[](size_t i) const { return p_[i]; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

}  // namespace rectifier
