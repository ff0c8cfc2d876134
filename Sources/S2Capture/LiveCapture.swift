@preconcurrency import CPcap
import S2Model

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// Options of a live capture handle.
public struct LiveOptions: Sendable {
    public var snapLength: Int32 = 262_144
    public var bufferSize: Int32 = 16 << 20
    public var promiscuous = true
    public var immediate = true
    public var filter: String?
    public init() {}
}

/// Kernel and interface counters of one live handle.
public struct LiveStatistics: Sendable {
    public var received: UInt64 = 0
    public var dropped: UInt64 = 0
    public var interfaceDropped: UInt64 = 0
}

/// Captures from one or more interfaces at once with libpcap.
///
/// Handles are non-blocking and waited on with `poll` on their selectable descriptors: libpcap's
/// blocking reads ignore the timeout on an idle interface, and then idle flows would never time
/// out and a stop request would wait for the next packet.
public final class LiveCapture {
    public struct Interface {
        public let name: String
        public let index: Int
        public let linkType: Int32
        fileprivate let handle: OpaquePointer
        fileprivate let fd: Int32
        public fileprivate(set) var frames = 0
    }

    public private(set) var interfaces: [Interface] = []
    private var program = bpf_program()

    /// Opens and activates every interface; throws `CaptureError` with libpcap's reason.
    public init(interfaces names: [String], options: LiveOptions) throws {
        for (i, name) in names.enumerated() {
            var errbuf = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
            guard let h = pcap_create(name, &errbuf) else {
                throw CaptureError("\(name): \(errbuf.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })")
            }
            pcap_set_snaplen(h, options.snapLength)
            pcap_set_promisc(h, options.promiscuous ? 1 : 0)
            pcap_set_timeout(h, 100)
            pcap_set_buffer_size(h, options.bufferSize)
            if options.immediate { pcap_set_immediate_mode(h, 1) }
            _ = pcap_set_tstamp_precision(h, Int32(PCAP_TSTAMP_PRECISION_NANO))
            let rc = pcap_activate(h)
            if rc < 0 {
                let why = String(cString: pcap_geterr(h))
                pcap_close(h)
                close()
                throw CaptureError("\(name): cannot capture (\(why.isEmpty ? String(cString: pcap_statustostr(rc)) : why))")
            }
            if let given = options.filter, !given.isEmpty {
                let f = LiveCapture.filter(given, forLinkType: pcap_datalink(h))
                var prog = bpf_program()
                if pcap_compile(h, &prog, f, 1, PCAP_NETMASK_UNKNOWN) != 0 || pcap_setfilter(h, &prog) != 0 {
                    let why = String(cString: pcap_geterr(h))
                    pcap_freecode(&prog)
                    pcap_close(h)
                    close()
                    throw CaptureError("invalid --filter expression '\(f)' on \(name): \(why)")
                }
                pcap_freecode(&prog)
            }
            var eb = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
            _ = pcap_setnonblock(h, 1, &eb)
            interfaces.append(Interface(name: name, index: i, linkType: pcap_datalink(h), handle: h, fd: pcap_get_selectable_fd(h)))
        }
    }

    deinit { close() }

    public func close() {
        for i in interfaces { pcap_close(i.handle) }
        interfaces = []
    }

    /// The BPF expression used when the user gives none: TCP on the s2s ports (also behind IPv6
    /// extension headers) and IP fragments (which carry no ports after the first one), untagged,
    /// behind one VLAN tag, or two (QinQ).
    ///
    /// libpcap's `vlan` moves the offsets of everything after it in the expression, so the
    /// untagged alternatives come first: with `vlan and …` in front of them (as here until issue
    /// #16's live test showed it), untagged fragments were read 4 bytes off and never captured.
    /// On links without VLAN tags (`any`, tun, loopback) libpcap refuses `vlan` altogether: there
    /// the expression is used without its VLAN part (`filter(_:forLinkType:)`).
    public static func defaultFilter(ports: [UInt16]) -> String {
        let p = ports.sorted().map { "tcp port \($0)" }.joined(separator: " or ")
        return withVLANs("(\(p)) or (ip[6:2] & 0x3fff != 0) or (ip6 and ip6[6] == 44)")
    }

    /// IPv6 behind extension headers, on any port: BPF cannot follow the chain to the TCP header
    /// (`ip6 protochain` loops backwards, which the kernel refuses — libpcap then filters every
    /// packet in user space — and libpcap rejects it after `vlan`). Such packets are rare.
    private static let chained = " or (ip6 and (ip6[6] == 0 or ip6[6] == 43 or ip6[6] == 51 or ip6[6] == 60))"
    private static let vlanPart = " or (vlan and ("

    private static func withVLANs(_ ip: String) -> String {
        "\(ip)\(chained)\(vlanPart)\(ip) or (vlan and (\(ip)))))"
    }

    /// The filter to compile on an interface of `linkType`: a default filter loses its VLAN part
    /// where libpcap has no VLAN support (anything but Ethernet); every other filter is the user's.
    static func filter(_ f: String, forLinkType linkType: Int32) -> String {
        guard linkType != 1, let r = f.firstRange(of: chained + vlanPart) else { return f }
        let ip = String(f[..<r.lowerBound])
        return withVLANs(ip) == f ? ip + chained : f
    }

    /// Waits up to `timeoutMilliseconds` for packets and delivers what is ready, at most
    /// `batch` frames per interface (so that signals, timers and stats get their turn under a
    /// constant flood). Returns the number of frames delivered.
    public func poll(timeoutMilliseconds: Int32, batch: Int = 20_000, _ body: (CapturedPacket) -> Void) -> Int {
        var fds = interfaces.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
        let ready = Glibc.poll(&fds, nfds_t(fds.count), timeoutMilliseconds)
        guard ready > 0 else { return 0 }
        var delivered = 0
        for (k, f) in fds.enumerated() where f.revents != 0 {
            var n = 0
            while n < batch {
                n += 1
                var header: UnsafeMutablePointer<pcap_pkthdr>? = nil
                var data: UnsafePointer<UInt8>? = nil
                let rc = pcap_next_ex(interfaces[k].handle, &header, &data)
                guard rc == 1, let hdr = header, let d = data else { break }
                interfaces[k].frames += 1
                delivered += 1
                let ts = Timestamp(seconds: Int64(hdr.pointee.ts.tv_sec), subsecondNanoseconds: Int64(hdr.pointee.ts.tv_usec))
                body(CapturedPacket(frame: FrameRef(input: k, number: interfaces[k].frames, time: ts),
                                    linkType: interfaces[k].linkType,
                                    bytes: UnsafeRawBufferPointer(start: d, count: Int(hdr.pointee.caplen)),
                                    wireLength: Int(hdr.pointee.len)))
            }
        }
        return delivered
    }

    /// Summed kernel statistics of every interface.
    public func statistics() -> LiveStatistics {
        var total = LiveStatistics()
        for i in interfaces {
            var s = pcap_stat()
            if pcap_stats(i.handle, &s) == 0 {
                total.received += UInt64(s.ps_recv)
                total.dropped += UInt64(s.ps_drop)
                total.interfaceDropped += UInt64(s.ps_ifdrop)
            }
        }
        return total
    }
}
