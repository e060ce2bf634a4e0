// LD_PRELOAD shim: logs every LLVM module lavapipe creates (one per compiled shader variant).
// Build: cc -O2 -shared -fPIC -o llvm_modules.so llvm_modules.c -ldl
// Use:   LLVM_MODULES_OUT=/tmp/mods.txt LD_PRELOAD=$PWD/llvm_modules.so deno run -A tasks/train.ts …
// Each line: <count> <module name> (lavapipe names them cs<N>_variant<K>).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

typedef void *(*CreateModule)(const char *, void *);
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long count;
static FILE *out;

void *LLVMModuleCreateWithNameInContext(const char *name, void *context) {
  static CreateModule real;
  if (!real) {
    // libLLVM is a dependency of the driver, not in the global scope: RTLD_NEXT would miss it.
    void *llvm = dlopen("libLLVM-15.so.1", RTLD_LAZY | RTLD_NOLOAD);
    real = (CreateModule)dlsym(llvm ? llvm : RTLD_NEXT, "LLVMModuleCreateWithNameInContext");
  }
  pthread_mutex_lock(&lock);
  if (!out) {
    const char *path = getenv("LLVM_MODULES_OUT");
    out = fopen(path ? path : "/tmp/llvm_modules.txt", "a");
  }
  if (out) {
    fprintf(out, "%ld %s\n", ++count, name);
    fflush(out);
  }
  pthread_mutex_unlock(&lock);
  return real(name, context);
}
