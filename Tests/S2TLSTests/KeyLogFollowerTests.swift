import Foundation
import Testing
import S2Model
@testable import S2TLS

/// `KeyLogFollower` reads a key log the way a server grows it.
struct KeyLogFollowerTests {
    static func line(_ label: String, _ random: UInt8, _ secret: UInt8) -> String {
        "\(label) \(String(repeating: String(format: "%02x", random), count: 32)) \(String(repeating: String(format: "%02x", secret), count: 48))\n"
    }

    final class TempDir {
        let path: String
        init() {
            path = NSTemporaryDirectory() + "s2scope-keylog-\(UUID().uuidString)"
            try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        deinit { try? FileManager.default.removeItem(atPath: path) }
        func append(_ name: String, _ text: String, mode: Int = 0o600) {
            let p = path + "/" + name
            if !FileManager.default.fileExists(atPath: p) {
                precondition(FileManager.default.createFile(atPath: p, contents: nil, attributes: [.posixPermissions: mode]), "\(p) could not be created")
            }
            let h = FileHandle(forWritingAtPath: p)!
            h.seekToEndOfFile()
            h.write(Data(text.utf8))
            h.closeFile()
        }
    }

    @Test func missingThenGrowingFileIsReadLineByLine() {
        let dir = TempDir()
        let f = KeyLogFollower(path: dir.path + "/keys.log")
        let first = f.poll()
        #expect(first.secrets.isEmpty && first.notes.count == 1 && first.notes[0].contains("does not exist yet"))
        #expect(f.poll().notes.isEmpty, "said once")
        dir.append("keys.log", "")
        #expect(f.poll().secrets.isEmpty && f.isOpen)
        // A line the server is still writing is not read until its newline.
        let l1 = Self.line("CLIENT_RANDOM", 0x11, 0xaa)
        dir.append("keys.log", String(l1.prefix(40)))
        #expect(f.poll().secrets.isEmpty)
        dir.append("keys.log", String(l1.dropFirst(40)) + "# a comment\n" + Self.line("CLIENT_RANDOM", 0x22, 0xbb))
        let got = f.poll()
        #expect(got.secrets.sessionCount == 2 && got.notes.isEmpty)
        #expect(got.secrets.secret("CLIENT_RANDOM", clientRandom: [UInt8](repeating: 0x11, count: 32)) == [UInt8](repeating: 0xaa, count: 48))
        #expect(f.poll().secrets.isEmpty, "nothing new")
        #expect(f.linesRead == 3 && f.malformedLines == 0)
    }

    @Test func truncationAndReplacementStartOver() throws {
        let dir = TempDir()
        let p = dir.path + "/keys.log"
        dir.append("keys.log", Self.line("CLIENT_RANDOM", 1, 1) + Self.line("CLIENT_RANDOM", 2, 2))
        let f = KeyLogFollower(path: p)
        #expect(f.poll().secrets.sessionCount == 2)
        // Truncated (logrotate copytruncate): read again from the start.
        let h = try #require(FileHandle(forWritingAtPath: p))
        h.truncateFile(atOffset: 0)
        h.write(Data(Self.line("CLIENT_RANDOM", 3, 3).utf8))
        h.closeFile()
        let t = f.poll()
        #expect(t.secrets.sessionCount == 1 && t.notes.contains { $0.contains("truncated") })
        // Replaced (rename + new file): the rest of the old file, then the new one from its start.
        try FileManager.default.moveItem(atPath: p, toPath: p + ".1")
        dir.append("keys.log.1", Self.line("CLIENT_RANDOM", 4, 4))
        dir.append("keys.log", Self.line("CLIENT_RANDOM", 5, 5))
        let r = f.poll()
        #expect(r.notes.contains { $0.contains("replaced") })
        #expect(r.secrets.hasSession(clientRandom: [UInt8](repeating: 4, count: 32)))
        #expect(r.secrets.hasSession(clientRandom: [UInt8](repeating: 5, count: 32)))
    }

    @Test func aKeyLogOthersCanReadIsAWarning() {
        let dir = TempDir()
        dir.append("keys.log", Self.line("CLIENT_RANDOM", 1, 1), mode: 0o644)
        let f = KeyLogFollower(path: dir.path + "/keys.log")
        let r = f.poll()
        #expect(r.secrets.sessionCount == 1)
        #expect(r.notes.count == 1 && r.notes[0].contains("WARNING") && r.notes[0].contains("mode 644"))
        #expect(f.poll().notes.isEmpty)
        let quiet = TempDir()
        quiet.append("keys.log", Self.line("CLIENT_RANDOM", 1, 1), mode: 0o600)
        #expect(KeyLogFollower(path: quiet.path + "/keys.log").poll().notes.isEmpty)
    }

    @Test func overlongLinesAreSkippedNotBuffered() {
        let dir = TempDir()
        dir.append("keys.log", String(repeating: "A", count: 100_000) + "\n" + Self.line("CLIENT_RANDOM", 7, 7))
        let f = KeyLogFollower(path: dir.path + "/keys.log")
        let r = f.poll()
        #expect(r.secrets.sessionCount == 1 && f.malformedLines == 1)
    }

    @Test func aDirectoryIsNotAKeyLog() {
        let dir = TempDir()
        let r = KeyLogFollower(path: dir.path).poll()
        #expect(r.secrets.isEmpty && r.notes.count == 1 && r.notes[0].contains("not a regular file"))
    }
}
