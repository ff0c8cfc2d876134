// libFuzzer target 'reassembly' (see FuzzTargets/ReassemblyFuzz.swift). Build and run through scripts/fuzz.sh.
//   fuzz-reassembly CORPUS_DIR [libFuzzer flags]      fuzz
//   fuzz-reassembly crash-file                        reproduce one input
//   fuzz-reassembly --make-seeds DIR [REPO_ROOT]      write the seed corpus
import FuzzTargets

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    ReassemblyFuzz.run(FuzzMain.bytes(data, size))
    return 0
}

FuzzMain.run(.reassembly) { data, size in
    ReassemblyFuzz.run(FuzzMain.bytes(data, size))
    return 0
}
