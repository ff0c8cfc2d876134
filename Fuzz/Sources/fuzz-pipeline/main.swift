// libFuzzer target 'pipeline' (see FuzzTargets/PipelineFuzz.swift). Build and run through scripts/fuzz.sh.
//   fuzz-pipeline CORPUS_DIR [libFuzzer flags]      fuzz
//   fuzz-pipeline crash-file                        reproduce one input
//   fuzz-pipeline --make-seeds DIR [REPO_ROOT]      write the seed corpus
#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import CFuzzDriver
import FuzzTargets

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    PipelineFuzz.run(UnsafeRawBufferPointer(start: size == 0 ? nil : data, count: size))
    return 0
}

let arguments = CommandLine.arguments
if arguments.count >= 3 && arguments[1] == "--make-seeds" {
    let n = Seeds.write(.pipeline, to: arguments[2], repoRoot: arguments.count >= 4 ? arguments[3] : Seeds.defaultRepoRoot)
    print("pipeline: \(n) seeds in \(arguments[2])")
    exit(0)
}
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
    PipelineFuzz.run(UnsafeRawBufferPointer(start: size == 0 ? nil : data, count: size))
    return 0
})
