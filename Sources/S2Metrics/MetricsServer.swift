import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Bounds of the metrics server: whoever reaches the port can cost it at most this much, and nothing
/// of the capture.
public struct MetricsServerLimits: Sendable {
    /// Connections open at once. At the limit the server stops accepting (new connections wait in
    /// the kernel's backlog, then the kernel refuses them) until a slot frees: a flood costs the
    /// server nothing while it lasts.
    public var maxConnections = 64
    /// Connections open at once from one client address, so that one client (a flood, a stuck
    /// scraper) cannot take every slot from the others; more from that address are closed as soon as
    /// they are accepted.
    public var maxConnectionsPerAddress = 8
    /// Time from accept to close: the request must arrive and the answer leave within it (one request
    /// per connection), so a slow or silent client frees its slot after this. Seconds.
    public var deadline = 5.0
    /// Bytes a client may send (request line, headers and any body).
    public var maxRequestBytes = 8 * 1024
    /// Connections waiting in the kernel to be accepted.
    public var backlog: Int32 = 256
    public init() {}
}

public struct MetricsServerError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// Serves `GET /metrics` (Prometheus text format 0.0.4) on its own event-loop thread (SwiftNIO).
///
/// Each connection gets one answer and is closed (`Connection: close`), and is closed anyway at its
/// deadline; a client address beyond its share is closed as soon as it is accepted, and with every
/// slot taken the server stops accepting until one frees. A scrape renders the registry from atomics
/// and takes no lock the capture thread holds.
public final class MetricsServer: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let channels: [any Channel]
    /// The addresses listened on (with the port the system chose when 0 was asked).
    public let listening: [String]
    /// Optional addresses that could not be bound (IPv6 off, …), with the reason.
    public let skipped: [String]

    public init(listen addresses: [ListenAddress], metrics: SensorMetrics, limits: MetricsServerLimits = .init()) throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let admission = Admission(limits: limits)
        var channels: [any Channel] = []
        var listening: [String] = [], skipped: [String] = []
        let unique = addresses.reduce(into: [ListenAddress]()) { if !$0.contains($1) { $0.append($1) } }
        for a in unique {
            // [::] and 0.0.0.0 on one port: each takes its own family (IPv6-only), else [::] takes both.
            let v6only = a.family == .inet6 && a.isWildcard && unique.contains { $0.family == .inet && $0.isWildcard && $0.port == a.port }
            var bootstrap = ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: limits.backlog)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(RefusalSink()) }
                }
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    Self.initialize(channel, admission: admission, metrics: metrics, limits: limits)
                }
            if v6only {
                bootstrap = bootstrap.serverChannelOption(
                    ChannelOptions.Types.SocketOption(level: SocketOptionLevel(IPPROTO_IPV6), name: SocketOptionName(IPV6_V6ONLY)), value: 1)
            }
            do {
                let ch = try bootstrap.bind(host: a.host, port: a.port).wait()
                channels.append(ch)
                let port = ch.localAddress?.port ?? a.port
                listening.append(ListenAddress(host: a.host, port: port, family: a.family).description)
            } catch {
                let why = Self.describe(error)
                if a.optional {
                    skipped.append("\(a): \(why)")
                    continue
                }
                for c in channels { try? c.close().wait() }
                try? group.syncShutdownGracefully()
                throw MetricsServerError(description: "cannot listen on \(a): \(why)")
            }
        }
        admission.listen(on: channels)
        if channels.isEmpty {
            try? group.syncShutdownGracefully()
            throw MetricsServerError(description: "cannot listen on any of \(unique.map(\.description).joined(separator: ", ")): \(skipped.joined(separator: "; "))")
        }
        self.group = group
        self.channels = channels
        self.listening = listening
        self.skipped = skipped
    }

    /// Stops listening, closes every connection and the event loop.
    public func shutdown() {
        for c in channels { try? c.close().wait() }
        try? group.syncShutdownGracefully()
    }

    private static func describe(_ error: any Error) -> String {
        if let io = error as? IOError { return "\(String(cString: strerror(io.errnoCode))) (errno \(io.errnoCode))" }
        return "\(error)"
    }

    /// Admits or refuses one accepted connection and builds its pipeline (on the event loop).
    private static func initialize(_ channel: any Channel, admission: Admission, metrics: SensorMetrics,
                                   limits: MetricsServerLimits) -> EventLoopFuture<Void> {
        let peer = Admission.clientKey(channel.remoteAddress)
        switch admission.admit(peer, metrics: metrics) {
        case .refusedAtLimit:
            metrics.serverRefusedAtLimit.increment()
            return channel.eventLoop.makeFailedFuture(Refused())
        case .refusedPerAddress:
            metrics.serverRefusedPerAddress.increment()
            return channel.eventLoop.makeFailedFuture(Refused())
        case .admitted:
            break
        }
        metrics.serverConnections.increment()
        let deadline = channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(limits.deadline * 1e9))) {
            metrics.serverTimeouts.increment()
            channel.close(promise: nil)
        }
        channel.closeFuture.whenComplete { _ in
            deadline.cancel()
            admission.release(peer, metrics: metrics)
            metrics.serverConnections.decrement()
        }
        return channel.eventLoop.makeCompletedFuture {
            let pipeline = channel.pipeline.syncOperations
            try pipeline.addHandler(RequestSizeLimit(limit: limits.maxRequestBytes, metrics: metrics))
            try pipeline.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: true)
            try pipeline.addHandler(MetricsHTTPHandler(metrics: metrics))
        }
    }
}

/// A connection refused at accept (the bootstrap closes it); not an error worth more than a counter.
struct Refused: Error {}

/// Swallows the refusals that the bootstrap reports on the listening channel.
final class RefusalSink: ChannelInboundHandler, Sendable {
    typealias InboundIn = Any
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if error is Refused { return }
        context.fireErrorCaught(error)
    }
}

/// Connection slots, in total and per client address; pauses the listeners while every slot is taken.
final class Admission: Sendable {
    enum Decision { case admitted, refusedAtLimit, refusedPerAddress }
    private struct State {
        var total = 0
        var byClient: [String: Int] = [:]
        var listeners: [any Channel] = []
        var paused = false
    }
    private let state = NIOLockedValueBox(State())
    private let limits: MetricsServerLimits

    init(limits: MetricsServerLimits) { self.limits = limits }

    func listen(on channels: [any Channel]) {
        state.withLockedValue { $0.listeners = channels }
    }

    func admit(_ client: String, metrics: SensorMetrics) -> Decision {
        let (decision, pause) = state.withLockedValue { s -> (Decision, [any Channel]) in
            // Accepts already read in the batch that filled the last slot.
            guard s.total < limits.maxConnections else { return (.refusedAtLimit, []) }
            guard s.byClient[client, default: 0] < limits.maxConnectionsPerAddress else { return (.refusedPerAddress, []) }
            s.total += 1
            s.byClient[client, default: 0] += 1
            guard s.total == limits.maxConnections, !s.paused else { return (.admitted, []) }
            s.paused = true
            return (.admitted, s.listeners)
        }
        if !pause.isEmpty { metrics.serverPaused.increment() }
        for l in pause { l.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in } }
        return decision
    }

    func release(_ client: String, metrics: SensorMetrics) {
        let resume = state.withLockedValue { s -> [any Channel] in
            s.total -= 1
            let n = s.byClient[client, default: 1] - 1
            s.byClient[client] = n > 0 ? n : nil
            guard s.paused, s.total < limits.maxConnections else { return [] }
            s.paused = false
            return s.listeners
        }
        for l in resume { l.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in } }
    }

    /// The client's address, IPv4-mapped IPv6 addresses as plain IPv4 (one client, one key).
    static func clientKey(_ address: SocketAddress?) -> String {
        guard let ip = address?.ipAddress else { return "?" }
        if ip.lowercased().hasPrefix("::ffff:"), ip.contains(".") { return String(ip.dropFirst(7)) }
        return ip
    }
}

/// Closes a connection whose client sends more than `limit` bytes.
final class RequestSizeLimit: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let limit: Int
    private let metrics: SensorMetrics
    private var received = 0

    init(limit: Int, metrics: SensorMetrics) {
        self.limit = limit
        self.metrics = metrics
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += Self.unwrapInboundIn(data).readableBytes
        guard received <= limit else {
            if received - Self.unwrapInboundIn(data).readableBytes <= limit { metrics.serverOversized.increment() }
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
    }
}

/// Answers the one request of a connection: `GET` or `HEAD` of `/metrics`; 404 elsewhere, 405 for
/// other methods. Then closes.
final class MetricsHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    private let metrics: SensorMetrics
    private var head: HTTPRequestHead?
    private var answered = false

    init(metrics: SensorMetrics) { self.metrics = metrics }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body: break
        case .end:
            guard !answered, let h = head else { return }
            answered = true
            respond(context, to: h)
        }
    }

    /// A request NIO could not parse: its error handler has answered 400; nothing more to say.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    private func respond(_ context: ChannelHandlerContext, to request: HTTPRequestHead) {
        let path = request.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let status: HTTPResponseStatus
        var body: [UInt8]
        var headers = HTTPHeaders()
        if request.method != .GET && request.method != .HEAD {
            status = .methodNotAllowed
            body = Array("only GET and HEAD are answered here\n".utf8)
            headers.add(name: "Allow", value: "GET, HEAD")
        } else if path != "/metrics" {
            status = .notFound
            body = Array("not found; the metrics are at /metrics\n".utf8)
        } else {
            status = .ok
            body = metrics.render()
        }
        metrics.requestCounter(status: Int(status.code)).increment()
        headers.add(name: "Content-Type", value: status == .ok ? "text/plain; version=0.0.4; charset=utf-8" : "text/plain; charset=utf-8")
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "Connection", value: "close")
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: request.version, status: status, headers: headers))), promise: nil)
        if request.method != .HEAD {
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        body = []
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
