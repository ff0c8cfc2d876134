// libFuzzer target 'pipeline' (see FuzzTargets/PipelineFuzz.swift). Build and run through scripts/fuzz.sh.
//   fuzz-pipeline CORPUS_DIR [libFuzzer flags]      fuzz
//   fuzz-pipeline crash-file                        reproduce one input
//   fuzz-pipeline --make-seeds DIR [REPO_ROOT]      write the seed corpus
import FuzzTargets

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    PipelineFuzz.run(FuzzMain.bytes(data, size))
    return 0
}

/// Half of the mutations splice in frames from the grammar (see FuzzTargets/GrammarMutator.swift).
@_cdecl("LLVMFuzzerCustomMutator")
public func fuzzMutate(_ data: UnsafeMutablePointer<UInt8>?, _ size: Int, _ maxSize: Int, _ seed: UInt32) -> Int {
    GrammarMutator.pipeline(data, size, maxSize, seed)
}

FuzzMain.run(.pipeline) { data, size in
    PipelineFuzz.run(FuzzMain.bytes(data, size))
    return 0
}
