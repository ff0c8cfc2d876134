#if canImport(Glibc)
import Glibc
#endif

/// The output of a live run: whole lines (JSON Lines or text) appended to a file or standard output,
/// each line with as few `write` calls as the system allows, nothing buffered.
///
/// What a long-lived sensor needs from it:
/// - **Never a half line.** When a write fails part-way (disk full), the part already written is cut
///   off again (`ftruncate` back to where the line began), so what is in the file stays valid JSON
///   Lines; the log then stops (`failure` says why) and counts the lines it could not write, while the
///   analysis goes on.
/// - **Log rotation.** `reopen()` (on SIGHUP) closes the file and opens the same path again: after
///   `mv events.jsonl events.jsonl.1; kill -HUP`, the following events go to a new file. A failed log
///   writes again after a reopen.
public final class EventLog {
    /// `write(2)`-like: bytes written, or -1 with `errno` set. Replaced in tests.
    public typealias WriteFunction = (Int32, UnsafeRawBufferPointer) -> Int

    /// The file, or nil for standard output.
    public let path: String?
    /// Why writing stopped (nil while it works), and when.
    public private(set) var failure: String?
    public private(set) var failedAt: Double?
    /// The `errno` of the failure (EPIPE: the reader went away).
    public private(set) var failureCode: Int32?
    public private(set) var linesWritten = 0
    /// Lines not written because the log had failed, in all.
    public private(set) var linesLost = 0
    private var lostSinceFailure = 0
    private var fd: Int32
    private let writeBytes: WriteFunction

    /// Opens `path` for appending (created with mode 0666 less the umask), or standard output.
    public init(path: String?, write: @escaping WriteFunction = EventLog.systemWrite) throws(EventLogError) {
        self.path = path
        writeBytes = write
        if let path {
            fd = try Self.open(path)
        } else {
            fd = STDOUT_FILENO
        }
        try startOnALineBoundary()
    }

    deinit { close() }

    public static func systemWrite(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Int { Glibc.write(fd, bytes.baseAddress, bytes.count) }

    /// Appends one line (which ends with "\n"). False when it was not written: the log has failed, now
    /// or before.
    @discardableResult
    public func append(_ line: String) -> Bool {
        guard failure == nil, fd >= 0 else {
            linesLost += 1
            lostSinceFailure += 1
            return false
        }
        var line = line
        let ok = line.withUTF8 { writeWhole(UnsafeRawBufferPointer($0)) }
        if ok { linesWritten += 1 } else {
            linesLost += 1
            lostSinceFailure += 1
        }
        return ok
    }

    /// What a reopen found: the failure it ended (with the lines lost meanwhile), if any.
    public struct Reopened {
        public var endedFailure: String?
        public var failedAt: Double?
        public var linesLost: Int
    }

    /// Closes the file and opens its path again (log rotation, or retrying after a failure). Standard
    /// output cannot be reopened: throws.
    public func reopen() throws(EventLogError) -> Reopened {
        guard let path else { throw EventLogError(message: "standard output cannot be reopened") }
        let newFD = try Self.open(path)
        if fd >= 0 { Glibc.close(fd) }
        fd = newFD
        let result = Reopened(endedFailure: failure, failedAt: failedAt, linesLost: lostSinceFailure)
        failure = nil
        failedAt = nil
        failureCode = nil
        lostSinceFailure = 0
        try startOnALineBoundary()
        return result
    }

    public func close() {
        if fd >= 0 && fd != STDOUT_FILENO { Glibc.close(fd) }
        fd = -1
    }

    // MARK: -

    private static func open(_ path: String) throws(EventLogError) -> Int32 {
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw EventLogError(message: "\(path): cannot open for writing (\(String(cString: strerror(errno))))") }
        return fd
    }

    /// A file that ends in the middle of a line (a crash of another writer, a copy cut short) gets a
    /// newline first, so that the next line stands on its own.
    private func startOnALineBoundary() throws(EventLogError) {
        var st = stat()
        guard let path, fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size > 0 else { return }
        // The log's descriptor is write-only: look through a second one.
        let reader = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard reader >= 0 else { return }
        var last: UInt8 = 0
        let n = pread(reader, &last, 1, st.st_size - 1)
        Glibc.close(reader)
        guard n == 1, last != UInt8(ascii: "\n") else { return }
        var nl = "\n"
        if !nl.withUTF8({ writeWhole(UnsafeRawBufferPointer($0)) }) {
            throw EventLogError(message: "\(path): \(failure ?? "write failed")")
        }
    }

    /// Writes all of `bytes` or, failing that, cuts off what it wrote and records the failure.
    private func writeWhole(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var done = 0
        while done < bytes.count {
            let n = writeBytes(fd, UnsafeRawBufferPointer(rebasing: bytes[done...]))
            if n > 0 {
                done += n
                continue
            }
            if n < 0 && errno == EINTR { continue }
            let code = n < 0 ? errno : 0
            let why = n < 0 ? String(cString: strerror(code)) : "the system wrote nothing"
            failureCode = code
            fail("write failed (\(why))", written: done)
            return false
        }
        return true
    }

    private func fail(_ why: String, written: Int) {
        var reason = why
        if written > 0 {
            // Cut the partial line off again. With O_APPEND (and for a regular standard output) the
            // offset is the end of what was written.
            var st = stat()
            let pos = lseek(fd, 0, SEEK_CUR)
            if fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, pos >= off_t(written) {
                if ftruncate(fd, pos - off_t(written)) == 0 {
                    _ = lseek(fd, pos - off_t(written), SEEK_SET)
                } else {
                    reason += "; the partial line could not be removed (\(String(cString: strerror(errno))))"
                }
            } else {
                reason += "; \(written) bytes of a partial line were written to a pipe or device"
            }
        }
        failure = reason
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        failedAt = Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
        lostSinceFailure = 0
    }
}

public struct EventLogError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
