import Foundation
import S2Report
import Testing

/// `live --output`: whole lines only, a failed write cut off again, reopening for log rotation.
struct EventLogTests {
    private func directory() -> String {
        let d = NSTemporaryDirectory() + "s2scope-eventlog-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        return d
    }

    private func contents(_ path: String) -> String {
        (try? String(contentsOfFile: path, encoding: .utf8)) ?? "<missing>"
    }

    private func line(_ n: Int) -> String { "{\"event\":\"stats\",\"n\":\(n),\"pad\":\"\(String(repeating: "x", count: 40))\"}\n" }

    /// A disk with `free` bytes left: writes what fits, then ENOSPC (as write(2) does on a full file system).
    private final class Disk: @unchecked Sendable {
        var free: Int
        var calls = 0
        init(free: Int) { self.free = free }
        func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int {
            calls += 1
            guard free > 0 else {
                errno = ENOSPC
                return -1
            }
            let n = Foundation.write(fd, bytes.baseAddress, min(bytes.count, free))
            if n > 0 { free -= n }
            return n
        }
    }

    @Test func linesAreAppendedWhole() throws {
        let path = directory() + "/events.jsonl"
        _ = FileManager.default.createFile(atPath: path, contents: Data(line(0).utf8))
        let log = try EventLog(path: path)
        for n in 1...3 { #expect(log.append(line(n))) }
        log.close()
        #expect(contents(path) == (0...3).map(line).joined(), "appended after what was there")
        #expect(log.linesWritten == 3 && log.linesLost == 0 && log.failure == nil)
    }

    @Test func aWriteThatFailsPartWayLeavesOnlyWholeLines() throws {
        let path = directory() + "/events.jsonl"
        let disk = Disk(free: line(1).utf8.count * 2 + 17)  // two lines and the start of a third
        let log = try EventLog(path: path, write: disk.write)
        #expect(log.append(line(1)))
        #expect(log.append(line(2)))
        #expect(!log.append(line(3)), "the third line does not fit")
        #expect(log.failure?.contains("No space left on device") == true, "\(log.failure ?? "no failure")")
        #expect(contents(path) == line(1) + line(2), "the 17 bytes of the third line were cut off again")
        let calls = disk.calls
        #expect(!log.append(line(4)))
        #expect(disk.calls == calls, "a failed log does not try again by itself")
        #expect(log.linesWritten == 2 && log.linesLost == 2)
        for l in contents(path).split(separator: "\n") {
            #expect(try JSONSerialization.jsonObject(with: Data(l.utf8)) is [String: Any])
        }
    }

    @Test func reopeningAfterAFailureWritesAgainAndCountsTheLoss() throws {
        let path = directory() + "/events.jsonl"
        let disk = Disk(free: line(1).utf8.count + 5)
        let log = try EventLog(path: path, write: disk.write)
        #expect(log.append(line(1)))
        #expect(!log.append(line(2)))
        #expect(!log.append(line(3)))
        disk.free = 1 << 20  // space freed (the operator rotated and compressed old logs)
        let r = try log.reopen()
        #expect(r.endedFailure != nil && r.linesLost == 2 && r.failedAt != nil)
        #expect(log.failure == nil)
        #expect(log.append(line(4)))
        log.close()
        #expect(contents(path) == line(1) + line(4))
    }

    @Test func reopeningFollowsARotation() throws {
        let dir = directory()
        let path = dir + "/events.jsonl", rotated = dir + "/events.jsonl.1"
        let log = try EventLog(path: path)
        log.append(line(1))
        log.append(line(2))
        try FileManager.default.moveItem(atPath: path, toPath: rotated)
        log.append(line(3))  // still the old file until the reopen (as with logrotate's copy window)
        let r = try log.reopen()
        #expect(r.endedFailure == nil && r.linesLost == 0)
        log.append(line(4))
        log.close()
        #expect(contents(rotated) == line(1) + line(2) + line(3))
        #expect(contents(path) == line(4))
    }

    @Test func aFileEndingMidLineGetsANewlineFirst() throws {
        let path = directory() + "/events.jsonl"
        _ = FileManager.default.createFile(atPath: path, contents: Data("{\"event\":\"stats\",\"cut".utf8))
        let log = try EventLog(path: path)
        log.append(line(1))
        log.close()
        #expect(contents(path) == "{\"event\":\"stats\",\"cut\n" + line(1), "the next line stands on its own")
    }

    @Test func unwritablePathsAndStandardOutputAreClearErrors() throws {
        #expect(throws: EventLogError.self) { try EventLog(path: "/nonexistent-dir/events.jsonl") }
        let out = try EventLog(path: nil)
        #expect(throws: EventLogError.self) { try out.reopen() }
    }
}
