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

FuzzMain.run(.decode) { data, size in
    DecodeFuzz.run(FuzzMain.bytes(data, size))
    return 0
}
