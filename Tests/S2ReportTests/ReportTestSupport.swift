import S2TestSupport
import Foundation

/// Helpers of the report tests: scratch folders, subprocesses, headless Chromium, python3.

/// A fresh folder under the system's temporary directory.
func scratchDirectory(_ name: String) throws -> URL {
    let u = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("s2scope-\(name)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}

/// Where tests leave artifacts worth looking at (screenshots): `.build-artifacts/` in the
/// repository (ignored by git).
func artifactsDirectory() throws -> URL {
    let u = repoRoot.appendingPathComponent(".build-artifacts")
    try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
    return u
}

struct ToolError: Error, CustomStringConvertible {
    var description: String
}

/// Runs `executable` with `arguments`; output and error go to files (no pipe deadlock), the
/// process is killed after `timeout` seconds.
@discardableResult
func runTool(_ executable: String, _ arguments: [String], currentDirectory: URL? = nil, stdin: Data? = nil,
             timeout: Double = 120) throws -> RunResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = arguments
    if let currentDirectory { p.currentDirectoryURL = currentDirectory }
    let outPath = NSTemporaryDirectory() + "s2scope-tool-out-\(UUID().uuidString)"
    let errPath = NSTemporaryDirectory() + "s2scope-tool-err-\(UUID().uuidString)"
    FileManager.default.createFile(atPath: outPath, contents: nil)
    FileManager.default.createFile(atPath: errPath, contents: nil)
    defer {
        try? FileManager.default.removeItem(atPath: outPath)
        try? FileManager.default.removeItem(atPath: errPath)
    }
    p.standardOutput = FileHandle(forWritingAtPath: outPath)
    p.standardError = FileHandle(forWritingAtPath: errPath)
    let input = Pipe()
    p.standardInput = stdin == nil ? FileHandle.nullDevice : input
    try p.run()
    if let stdin {
        input.fileHandleForWriting.write(stdin)
        try input.fileHandleForWriting.close()
    }
    let deadline = Date().addingTimeInterval(timeout)
    while p.isRunning && Date() < deadline { usleep(20_000) }
    if p.isRunning {
        p.terminate()
        p.waitUntilExit()
        throw ToolError(description: "\(executable) did not finish within \(Int(timeout)) s")
    }
    p.waitUntilExit()
    return RunResult(status: p.terminationStatus,
                     stdout: String(decoding: FileManager.default.contents(atPath: outPath) ?? Data(), as: UTF8.self),
                     stderr: String(decoding: FileManager.default.contents(atPath: errPath) ?? Data(), as: UTF8.self))
}

/// Runs the s2scope binary in `directory` (so relative input paths stay relative in reports).
func runS2Scope(_ arguments: [String], in directory: URL) throws -> RunResult {
    try runTool(s2scopeBinary().path, arguments, currentDirectory: directory)
}

/// Headless Chromium (Debian package `chromium`; `scripts/install-deps.sh test` installs it,
/// and the first test that needs it installs it with apt when running as root).
enum Chromium {
    static let candidates = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]

    /// The binary, installing the package once if it is missing.
    static let binary: Result<String, ToolError> = {
        if let b = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) { return .success(b) }
        guard getuid() == 0 else {
            return .failure(ToolError(description: "chromium is not installed and the tests do not run as root: run scripts/install-deps.sh test"))
        }
        let env = ["/usr/bin/env", "DEBIAN_FRONTEND=noninteractive"]
        _ = try? runTool(env[0], [env[1], "apt-get", "update", "-qq"], timeout: 600)
        let r = try? runTool(env[0], [env[1], "apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"], timeout: 1200)
        if let b = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) { return .success(b) }
        return .failure(ToolError(description: "could not install chromium with apt-get: \(r?.stderr ?? "apt-get did not run")"))
    }()

    static func run(_ extra: [String], page: URL) throws -> RunResult {
        let bin = try binary.get()
        let profile = try scratchDirectory("chromium-profile")
        defer { try? FileManager.default.removeItem(at: profile) }
        let args = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
                    "--disable-dev-shm-usage", "--user-data-dir=\(profile.path)"] + extra + [page.absoluteString]
        let r = try runTool(bin, args, currentDirectory: profile, timeout: 180)
        guard r.status == 0 else { throw ToolError(description: "chromium exited \(r.status): \(r.stderr.suffix(2000))") }
        return r
    }

    /// The DOM after the page loaded and its scripts ran.
    static func dumpDOM(_ page: URL) throws -> String {
        try run(["--dump-dom"], page: page).stdout
    }

    /// Runs `steps` on `page` through the DevTools protocol (scripts/html-drive.py: real mouse
    /// clicks, evaluations, screenshots) and returns each step's result.
    static func drive(_ page: URL, _ steps: [[String: Any]]) throws -> [Any] {
        let bin = try binary.get()
        let json = String(decoding: try JSONSerialization.data(withJSONObject: steps), as: UTF8.self)
        let r = try runTool("/usr/bin/python3", [repoRoot.appendingPathComponent("scripts/html-drive.py").path, bin, page.absoluteString, json],
                            timeout: 180)
        guard let out = try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [[String: Any]] else {
            throw ToolError(description: "html-drive.py exited \(r.status): \(r.stdout.suffix(500)) \(r.stderr.suffix(1000))")
        }
        if let failed = out.first(where: { $0["error"] != nil }) { throw ToolError(description: "html-drive.py: \(failed)") }
        return out.map { $0["result"] ?? NSNull() }
    }

    static func screenshot(_ page: URL, to png: URL, width: Int = 1400, height: Int = 2000) throws {
        try? FileManager.default.removeItem(at: png)
        _ = try run(["--hide-scrollbars", "--screenshot=\(png.path)", "--window-size=\(width),\(height)"], page: page)
        guard FileManager.default.fileExists(atPath: png.path) else { throw ToolError(description: "chromium wrote no screenshot") }
    }
}

/// python3 with the `jsonschema` module; `pip install jsonschema` only when the import fails.
enum Python {
    static let ready: Result<Void, ToolError> = {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/python3") else {
            return .failure(ToolError(description: "python3 is not installed"))
        }
        if (try? runTool("/usr/bin/python3", ["-c", "import jsonschema"]))?.status == 0 { return .success(()) }
        let pip = try? runTool("/usr/bin/python3", ["-m", "pip", "install", "--quiet", "jsonschema"], timeout: 600)
        if (try? runTool("/usr/bin/python3", ["-c", "import jsonschema"]))?.status == 0 { return .success(()) }
        let pip2 = try? runTool("/usr/bin/python3", ["-m", "pip", "install", "--quiet", "--break-system-packages", "jsonschema"], timeout: 600)
        if (try? runTool("/usr/bin/python3", ["-c", "import jsonschema"]))?.status == 0 { return .success(()) }
        return .failure(ToolError(description: "python3 module 'jsonschema' is missing and 'pip install jsonschema' failed: \(pip?.stderr ?? "") \(pip2?.stderr ?? "")"))
    }()

    static func run(_ script: String, _ arguments: [String] = []) throws -> RunResult {
        try ready.get()
        return try runTool("/usr/bin/python3", ["-c", script] + arguments, timeout: 300)
    }
}

extension String {
    /// Non-overlapping occurrences of `needle`.
    func occurrences(of needle: String) -> Int {
        guard !needle.isEmpty else { return 0 }
        var n = 0
        var rest = self[...]
        while let r = rest.range(of: needle) {
            n += 1
            rest = rest[r.upperBound...]
        }
        return n
    }
}
