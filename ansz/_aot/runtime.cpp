// numba's runtime (NRT), compiled into ansz's ahead-of-time kernel library from numba's own
// source: the allocator behind np.empty / np.zeros inside the kernels. setup.py's build_ext
// compiles this file with numba/core/runtime on the include path.
#include "nrt.cpp"

#if defined(_WIN32)
#define ANSZ_EXPORT __declspec(dllexport)
#else
#define ANSZ_EXPORT __attribute__((visibility("default")))
#endif

// Sets up the runtime's allocator; called once, before the first kernel (by the binding's
// bind()). Returns 0.
extern "C" ANSZ_EXPORT int ansz_kernels_init(void) {
    NRT_MemSys_init();
    return 0;
}
