@preconcurrency import CPcap
import S2Model

#if canImport(Glibc)
import Glibc
#endif

/// Writes frames to a pcap file through libpcap (`pcap_open_dead` + `pcap_dump_open` +
/// `pcap_dump`), with nanosecond timestamps, in the link type of the capture they came from —
/// a file Wireshark, tshark, tcpdump and S2Scope itself open.
public final class PcapDumpWriter {
    public let path: String
    public let linkType: Int32
    public private(set) var packetsWritten = 0
    private var dead: OpaquePointer?
    private var dumper: OpaquePointer?

    /// Creates (or truncates) `path`. Throws `CaptureError` when libpcap cannot open it.
    public init(path: String, linkType: Int32, snapLength: Int = 262_144) throws {
        self.path = path
        self.linkType = linkType
        guard let d = pcap_open_dead_with_tstamp_precision(linkType, Int32(max(snapLength, 1)), UInt32(PCAP_TSTAMP_PRECISION_NANO)) else {
            throw CaptureError("\(path): libpcap cannot create a capture of link type \(linkTypeName(linkType))")
        }
        guard let w = pcap_dump_open(d, path) else {
            let reason = String(cString: pcap_geterr(d))
            pcap_close(d)
            throw CaptureError("\(path): cannot write the capture (\(reason))")
        }
        dead = d
        dumper = w
    }

    deinit { try? close() }

    /// Appends one frame: its captured bytes, length on the wire and capture time.
    public func write(_ bytes: UnsafeRawBufferPointer, wireLength: Int, time: Timestamp) {
        guard let dumper, let base = bytes.baseAddress else { return }
        var header = pcap_pkthdr()
        header.ts.tv_sec = Int(time.seconds)
        header.ts.tv_usec = Int(time.nanoseconds)  // nanoseconds: the dead handle has nanosecond precision
        // Frames come from captures, whose record lengths are 32-bit: clamp rather than trap anyway.
        header.caplen = UInt32(clamping: bytes.count)
        header.len = UInt32(clamping: max(wireLength, bytes.count))
        pcap_dump(UnsafeMutablePointer<UInt8>(dumper), &header, base.assumingMemoryBound(to: UInt8.self))
        packetsWritten += 1
    }

    /// Appends one frame as the reader delivered it.
    public func write(_ packet: CapturedPacket) {
        write(packet.bytes, wireLength: packet.wireLength, time: packet.frame.time)
    }

    /// Flushes and closes the file; throws when the data could not be written.
    public func close() throws {
        guard let w = dumper else { return }
        dumper = nil
        let flushed = pcap_dump_flush(w) == 0
        let failed = ferror(pcap_dump_file(w)) != 0
        pcap_dump_close(w)
        if let d = dead { pcap_close(d) }
        dead = nil
        if !flushed || failed { throw CaptureError("\(path): writing the capture failed") }
    }
}
