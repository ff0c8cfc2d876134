import S2TestSupport
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One run of the real `s2scope` binary with the child's own peak memory.
struct MeasuredRun {
    var status: Int32
    var stdout: String
    var stdoutData: Data
    var stderr: String
    /// Peak resident set size of this child alone (`wait4` rusage, ru_maxrss), in KiB.
    var maxRSSKiB: Int
    var seconds: Double

    var maxRSSMiB: Double { Double(maxRSSKiB) / 1024 }
    var json: [String: Any]? { try? JSONSerialization.jsonObject(with: Data(stdout.utf8)) as? [String: Any] }
}

/// Runs `s2scope` under GNU time (`/usr/bin/time -f %M`, Debian package `time`, installed by
/// `scripts/install-deps.sh test`) and reports the child's own peak RSS.
///
/// Why not `wait4`/`getrusage(RUSAGE_CHILDREN)` on a child spawned from here: posix_spawn uses
/// vfork, and at exec Linux folds the *parent's* RSS high-water mark into the child's
/// `ru_maxrss` — a test process holding a 20 MB capture would be charged to every child it starts.
/// GNU time fork()s from a ~1 MiB process, so the figure is the analyzer's. Without GNU time the
/// `wait4` figure is used (an upper bound). Standard output and error go to temporary files (no
/// pipe can fill up and block the child).
func runMeasured(_ arguments: [String]) throws -> MeasuredRun {
    let binary = s2scopeBinary().path
    let id = UUID().uuidString
    let outPath = NSTemporaryDirectory() + "s2scope-hostile-out-\(id)"
    let errPath = NSTemporaryDirectory() + "s2scope-hostile-err-\(id)"
    defer {
        unlink(outPath)
        unlink(errPath)
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    let timePath = NSTemporaryDirectory() + "s2scope-hostile-rss-\(id)"
    defer { unlink(timePath) }
    let gnuTime = access("/usr/bin/time", X_OK) == 0
    let command = gnuTime ? ["/usr/bin/time", "-f", "%M", "-o", timePath, binary] + arguments : [binary] + arguments
    let argv: [UnsafeMutablePointer<CChar>?] = command.map { strdup($0) } + [nil]
    defer { for a in argv { free(a) } }
    var env = ProcessInfo.processInfo.environment
    env["SWIFT_BACKTRACE"] = "enable=no"
    let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { for e in envp { free(e) } }
    var pid: pid_t = 0
    let started = Date()
    let rc = posix_spawn(&pid, command[0], &actions, nil, argv, envp)
    guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO) }
    var status: Int32 = 0
    var usage = rusage()
    while wait4(pid, &status, 0, &usage) < 0 && errno == EINTR {}
    let seconds = Date().timeIntervalSince(started)
    // WIFEXITED / WEXITSTATUS / WTERMSIG are macros: decode by hand.
    let exitStatus: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    let out = FileManager.default.contents(atPath: outPath) ?? Data()
    let err = FileManager.default.contents(atPath: errPath) ?? Data()
    var maxRSS = Int(usage.ru_maxrss)
    if gnuTime {
        // The last line is %M (earlier lines: "Command exited with non-zero status N", signals).
        let text = String(decoding: FileManager.default.contents(atPath: timePath) ?? Data(), as: UTF8.self)
        if let kib = text.split(separator: "\n").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) { maxRSS = kib }
    }
    return MeasuredRun(status: exitStatus, stdout: String(decoding: out, as: UTF8.self), stdoutData: out,
                       stderr: String(decoding: err, as: UTF8.self), maxRSSKiB: maxRSS, seconds: seconds)
}
