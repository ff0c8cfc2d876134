#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import CFuzzDriver

/// What every fuzz executable's `main.swift` does, in one place: `--make-seeds DIR [REPO_ROOT]`
/// writes the target's seed corpus; anything else goes to libFuzzer with `body` as the target.
public enum FuzzMain {
    public static func run(_ target: Seeds.Target, _ body: @escaping @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> Never {
        let arguments = CommandLine.arguments
        if arguments.count >= 3 && arguments[1] == "--make-seeds" {
            let n = Seeds.write(target, to: arguments[2], repoRoot: arguments.count >= 4 ? arguments[3] : Seeds.defaultRepoRoot)
            print("\(target.rawValue): \(n) seeds in \(arguments[2])")
            exit(0)
        }
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, body))
    }

    /// The fuzz input as a buffer (libFuzzer may pass a null pointer for an empty input).
    public static func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: size == 0 ? nil : data, count: size)
    }
}
