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

FuzzMain.run(.pipeline) { data, size in
    PipelineFuzz.run(FuzzMain.bytes(data, size))
    return 0
}
