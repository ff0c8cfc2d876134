// libFuzzer target 'decode' (see FuzzTargets/DecodeFuzz.swift). Build and run through scripts/fuzz.sh.
//   fuzz-decode CORPUS_DIR [libFuzzer flags]      fuzz
//   fuzz-decode crash-file                        reproduce one input
//   fuzz-decode --make-seeds DIR [REPO_ROOT]      write the seed corpus
import FuzzTargets

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    DecodeFuzz.run(FuzzMain.bytes(data, size))
    return 0
}

/// Half of the mutations splice in frames from the grammar (see FuzzTargets/GrammarMutator.swift).
@_cdecl("LLVMFuzzerCustomMutator")
public func fuzzMutate(_ data: UnsafeMutablePointer<UInt8>?, _ size: Int, _ maxSize: Int, _ seed: UInt32) -> Int {
    GrammarMutator.decode(data, size, maxSize, seed)
}

FuzzMain.run(.decode) { data, size in
    DecodeFuzz.run(FuzzMain.bytes(data, size))
    return 0
}
