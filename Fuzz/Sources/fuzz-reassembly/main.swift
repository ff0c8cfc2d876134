// libFuzzer target 'reassembly' (see FuzzTargets/ReassemblyFuzz.swift). Build and run through scripts/fuzz.sh.
//   fuzz-reassembly CORPUS_DIR [libFuzzer flags]      fuzz
//   fuzz-reassembly crash-file                        reproduce one input
//   fuzz-reassembly --make-seeds DIR [REPO_ROOT]      write the seed corpus
#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import CFuzzDriver
import FuzzTargets

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    ReassemblyFuzz.run(UnsafeRawBufferPointer(start: size == 0 ? nil : data, count: size))
    return 0
}

let arguments = CommandLine.arguments
if arguments.count >= 3 && arguments[1] == "--make-seeds" {
    let n = Seeds.write(.reassembly, to: arguments[2], repoRoot: arguments.count >= 4 ? arguments[3] : Seeds.defaultRepoRoot)
    print("reassembly: \(n) seeds in \(arguments[2])")
    exit(0)
}
var argc = CommandLine.argc
var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in
    ReassemblyFuzz.run(UnsafeRawBufferPointer(start: size == 0 ? nil : data, count: size))
    return 0
})
