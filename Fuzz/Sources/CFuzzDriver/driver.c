// Intentionally empty: this target only declares libFuzzer's LLVMFuzzerRunDriver for Swift.
#include "fuzz_driver.h"
