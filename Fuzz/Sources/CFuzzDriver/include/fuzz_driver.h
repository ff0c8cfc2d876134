#ifndef S2SCOPE_FUZZ_DRIVER_H
#define S2SCOPE_FUZZ_DRIVER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's entry point for programs that own main(): parses libFuzzer flags from argv and
/// runs the fuzzing loop with `callback` as the target (compiler-rt FuzzerInterface.h).
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

/// libFuzzer's own mutations (dictionary included), for a custom mutator to fall back on.
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);

#endif
