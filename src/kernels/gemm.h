// Matrix products through OpenBLAS, with a plain reference for the tests. Row-major throughout.
#pragma once
#include <cblas.h>
#include <cstddef>

namespace rectifier::kernels {

// C (m, n) = alpha * op(A) (m, k) * op(B) (k, n) + beta * C
inline void gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* A, int lda, const float* B, int ldb,
                 float beta, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, A, lda,
              B, ldb, beta, C, ldc);
}
inline void gemm(bool ta, bool tb, int m, int n, int k, double alpha, const double* A, int lda, const double* B,
                 int ldb, double beta, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, alpha, A, lda,
              B, ldb, beta, C, ldc);
}

// The reference: three loops, accumulated in double.
template <class T>
void gemm_ref(bool ta, bool tb, int m, int n, int k, T alpha, const T* A, int lda, const T* B, int ldb, T beta, T* C,
              int ldc) {
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < n; ++j) {
      double s = 0;
      for (int p = 0; p < k; ++p) s += double(ta ? A[p * lda + i] : A[i * lda + p]) * double(tb ? B[j * ldb + p] : B[p * ldb + j]);
      C[i * ldc + j] = T(alpha * s + (beta == T(0) ? 0.0 : double(beta) * C[i * ldc + j]));
    }
}

}  // namespace rectifier::kernels
