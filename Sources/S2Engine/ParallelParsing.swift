#if canImport(Glibc)
import Glibc
#endif
import S2Model
import S2XMPP

/// `--threads N`: XML parsing of the connections runs on N−1 worker threads, while the calling
/// thread reads, decodes and reassembles, and applies the parse results to the dialback model
/// and the rules **in capture order**.
///
/// Connections are independent until correlation, so each one is parsed by one worker
/// (its ID picks it). Everything the reassembler hands over is logged in a round: the bytes go
/// to the connection's worker, and the main thread keeps the order of every step (open, data,
/// gap, close, anomaly, time). A full round goes to the workers; the round handed out `depth`
/// rounds before it is then applied by walking its log and taking each data step's output from
/// its worker, which reproduces exactly the order of the single-threaded run, so the verdicts are
/// identical. At most `depth` rounds are in flight besides the one being logged: memory stays
/// bounded by the round size.
///
/// The calling thread also parses a share of the connections itself (`inline`, a worker that it
/// runs between rounds), as much as keeps it from waiting for the workers: when it has to wait
/// for a worker's batch, new connections go to it more often, and less often when the batch was
/// ready. Which thread parses a connection changes nothing in what is applied, nor when.
final class ParallelParsing {
    enum Step {
        case advance(Timestamp)
        case open(Engine.ConnectionContext, Engine.OpenInfo)
        /// The next parse step of this worker, for this connection.
        case parsed(worker: Int, Engine.ConnectionContext)
        case closed(Engine.ConnectionContext, Engine.CloseInfo)
        case anomaly(Anomaly)
    }

    struct Round {
        var batches: [ParseBatch]
        var steps: [Step]
        var bytes: Int
    }

    private unowned let engine: Engine
    private let workers: [ParseWorker]
    /// The calling thread's own share: a worker that no thread runs, its batch parsed in `submit`.
    private let inline: ParseWorker
    /// Of every `shareUnits` new connections, this many are parsed inline (feedback in `apply`
    /// unless `fixedShare`).
    private var inlineShare = 0
    private let fixedShare: Bool
    private var shareCredit = 0
    private static let shareUnits = 64
    /// At most half of the connections: the calling thread also reads, decodes and applies.
    private static let maxInlineShare = 32

    /// The share after a round: one step up when the calling thread had to wait for a worker,
    /// one step down when the workers' batches were ready.
    static func nextShare(_ share: Int, waited: Bool) -> Int {
        waited ? min(share + 1, maxInlineShare) : max(share - 1, 0)
    }
    private var threads: [pthread_t] = []
    private var batches: [ParseBatch]
    private var steps: [Step] = []
    private var roundBytes = 0
    /// Rounds handed to the workers and not applied yet, oldest first.
    private var inFlight: [Round] = []
    /// How many rounds may be in flight after a submit before the oldest is applied.
    private let depth: Int
    /// Applied batches of each worker (the calling thread's last), for that worker's next rounds.
    private var pools: [[ParseBatch]]
    private var stopped = false
    /// Each worker's live expat parsers at the end of its batch of the last round applied.
    private var appliedParsers: [Int]

    /// A round closes at this many payload bytes or steps (whichever comes first).
    private let maxRoundBytes: Int
    private let maxRoundSteps: Int

    /// Starts up to `n` workers; nil when not even one thread could be started (the engine then
    /// parses on its own thread).
    init?(engine: Engine, workers n: Int, round: (bytes: Int, steps: Int), depth: Int, inlineShare fixed: Int? = nil,
          makeParser: @escaping @Sendable (ConnectionID, ParseOutputSink, ParserCount) -> ConnectionParser) {
        self.engine = engine
        fixedShare = fixed != nil
        inlineShare = min(max(fixed ?? 0, 0), Self.shareUnits)
        maxRoundBytes = max(1, round.bytes)
        maxRoundSteps = max(1, round.steps)
        self.depth = max(1, depth)
        var started: [ParseWorker] = []
        for _ in 0..<max(1, n) {
            let w = ParseWorker(index: started.count, makeParser: makeParser)
            var t = pthread_t()
            let arg = Unmanaged.passRetained(w).toOpaque()
            let rc = pthread_create(&t, nil, { raw in
                let w = Unmanaged<ParseWorker>.fromOpaque(raw!).takeRetainedValue()
                w.run()
                return nil
            }, arg)
            guard rc == 0 else {
                Unmanaged<ParseWorker>.fromOpaque(arg).release()
                break
            }
            started.append(w)
            threads.append(t)
        }
        guard !started.isEmpty else { return nil }
        workers = started
        inline = ParseWorker(index: started.count, makeParser: makeParser)
        batches = (0...started.count).map { ParseBatch(worker: $0) }
        appliedParsers = (0...started.count).map { _ in 0 }
        pools = (0...started.count).map { _ in [] }
    }

    // MARK: - What the memory estimate may count on

    /// Live expat parsers on the workers as of the last round applied: exact once `flush` has
    /// drained the rounds, as of `flush` the same count a one-thread run has at that packet.
    var liveParsers: Int { appliedParsers.reduce(0, +) }

    /// Steps and payload bytes logged or in flight but not applied yet: what may still change the
    /// parsers and the rules' state that `liveParsers` and the analyzers do not show.
    var unappliedSteps: Int { inFlight.reduce(steps.count) { $0 + $1.steps.count } }
    var unappliedBytes: Int { inFlight.reduce(roundBytes) { $0 + $1.bytes } }

    var workerCount: Int { workers.count }

    /// The parsing worker of a new connection: `workers.count` is the calling thread's own.
    func worker(for id: ConnectionID) -> Int {
        shareCredit += inlineShare
        if shareCredit >= Self.shareUnits {
            shareCredit -= Self.shareUnits
            return workers.count
        }
        return id.value % workers.count
    }

    // MARK: - Logging a round (main thread)

    func step(_ s: Step) { steps.append(s) }

    func data(_ ctx: Engine.ConnectionContext, _ d: Direction, _ bytes: UnsafeRawBufferPointer, at offset: UInt64, frame: FrameRef,
              parksWhenIdle: Bool) {
        let w = ctx.worker
        let b = batches[w]
        let start = b.bytes.count
        b.bytes.append(contentsOf: bytes)
        b.ops.append(.data(ctx.id, d, start: start, count: bytes.count, offset: offset, frame: frame, parksWhenIdle: parksWhenIdle))
        steps.append(.parsed(worker: w, ctx))
        roundBytes += bytes.count
    }

    func gap(_ ctx: Engine.ConnectionContext, _ d: Direction, at offset: UInt64, length: UInt64, frame: FrameRef) {
        batches[ctx.worker].ops.append(.gap(ctx.id, d, offset: offset, length: length, frame: frame))
        steps.append(.parsed(worker: ctx.worker, ctx))
    }

    func midstream(_ ctx: Engine.ConnectionContext, _ d: Direction) {
        batches[ctx.worker].ops.append(.midstream(ctx.id, d))
        steps.append(.parsed(worker: ctx.worker, ctx))
    }

    func close(_ ctx: Engine.ConnectionContext, _ info: Engine.CloseInfo) {
        batches[ctx.worker].ops.append(.finish(ctx.id))
        steps.append(.parsed(worker: ctx.worker, ctx))
        steps.append(.closed(ctx, info))
    }

    /// Called between packets: hands a full round to the workers.
    func packetDone() {
        if roundBytes >= maxRoundBytes || steps.count >= maxRoundSteps { submit() }
    }

    private func submit() {
        let round = Round(batches: batches, steps: steps, bytes: roundBytes)
        for (i, w) in workers.enumerated() { w.inbox.put(batches[i]) }
        inline.parse(batches[workers.count])
        batches = (0..<batches.count).map { i in
            guard let b = pools[i].popLast() else { return ParseBatch(worker: i) }
            b.bytes.removeAll(keepingCapacity: true)
            b.ops.removeAll(keepingCapacity: true)
            return b
        }
        steps = []
        steps.reserveCapacity(maxRoundSteps)
        roundBytes = 0
        // While the workers parse this round, an earlier one is applied here.
        inFlight.append(round)
        if inFlight.count > depth { apply(inFlight.removeFirst(), steady: true) }
    }

    /// `steady`: the round is applied while the workers parse the next one, as a run goes; the
    /// share of the parsing moves only then (a flush waits for the workers by design).
    private func apply(_ round: Round, steady: Bool = false) {
        // Each worker answers its batches in order: this is the round's batch. Having to wait for
        // it says the workers are the longer side: parse more here.
        var waited = false
        for (i, w) in workers.enumerated() {
            waited = waited || !w.outbox.hasItem
            appliedParsers[i] = w.outbox.take().liveParsers
        }
        appliedParsers[workers.count] = round.batches[workers.count].liveParsers
        if steady && !fixedShare { inlineShare = Self.nextShare(inlineShare, waited: waited) }
        for s in round.steps {
            switch s {
            case .advance(let t): engine.advanceRules(to: t)
            case .open(let ctx, let info): engine.open(ctx, info)
            case .parsed(let w, let ctx):
                let b = round.batches[w]
                let end = b.ends[b.consumed]
                b.consumed += 1
                while b.cursor < end {
                    engine.apply(b.outputs[b.cursor], to: ctx)
                    b.cursor += 1
                }
            case .closed(let ctx, let info): engine.closeModel(ctx, info)
            case .anomaly(let a): engine.record(a)
            }
        }
        // A batch goes back to the worker that filled it, which empties it when it takes it next:
        // the events are freed by the thread that allocated them. Freed here or by another worker,
        // each free would take the allocating thread's malloc arena lock, which that thread holds
        // while it allocates: the reading thread slept on it ~5,700 times per 100 MB (perf
        // sched_switch) when the batches of the reading thread's own share came from the worker.
        for (i, b) in round.batches.enumerated() { pools[i].append(b) }
    }

    /// Applies everything logged or in flight and keeps the workers (live runs: a finding is
    /// judged when its packets were read, not when a round happens to fill).
    func flush() {
        guard !stopped, !steps.isEmpty || !inFlight.isEmpty else { return }
        submit()
        while !inFlight.isEmpty { apply(inFlight.removeFirst()) }
    }

    /// Applies everything still logged or in flight, then stops the workers.
    func finish() {
        flush()
        stopWorkers()
    }

    private func stopWorkers() {
        guard !stopped else { return }
        stopped = true
        for w in workers {
            let stop = ParseBatch(worker: -1)
            stop.stop = true
            w.inbox.put(stop)
        }
        for t in threads { pthread_join(t, nil) }
    }

    // An engine dropped without `finish` takes its parsers along: the workers are stopped, and
    // nothing is applied to the engine, which is going away.
    deinit { stopWorkers() }
}

/// One worker's share of a round: payload bytes and the parse steps on them, and, once
/// parsed, the outputs with where each step's output ends.
final class ParseBatch: @unchecked Sendable {
    /// Steps name their connection: its parser exists only on the worker. The main thread never
    /// touches a parser, so no cache line of one bounces between the cores.
    enum Op {
        case data(ConnectionID, Direction, start: Int, count: Int, offset: UInt64, frame: FrameRef, parksWhenIdle: Bool)
        case gap(ConnectionID, Direction, offset: UInt64, length: UInt64, frame: FrameRef)
        case midstream(ConnectionID, Direction)
        case finish(ConnectionID)
    }
    /// The only worker that parses (and so empties) this batch, round after round.
    let worker: Int
    var bytes: [UInt8] = []
    var ops: [Op] = []
    var outputs: [ParseOutput] = []
    var ends: [Int] = []
    var consumed = 0
    var cursor = 0
    var stop = false
    /// The worker's live expat parsers when it finished this batch.
    var liveParsers = 0

    init(worker: Int) { self.worker = worker }

    /// Forgets the last round's outputs (ops and bytes are this round's).
    func reset() {
        outputs.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
        consumed = 0
        cursor = 0
    }
}

/// A thread that parses the batches of its connections, in the order they come.
final class ParseWorker: ParseOutputSink, @unchecked Sendable {
    let inbox = Handoff<ParseBatch>()
    let outbox = Handoff<ParseBatch>()
    private var current: ParseBatch?
    private var parsers: [ConnectionID: ConnectionParser] = [:]
    private let parserCount = ParserCount()
    private let makeParser: (ConnectionID, ParseOutputSink, ParserCount) -> ConnectionParser
    /// Which of the `ParallelParsing`'s workers this is (the calling thread's own is the last).
    let index: Int

    init(index: Int, makeParser: @escaping (ConnectionID, ParseOutputSink, ParserCount) -> ConnectionParser) {
        self.index = index
        self.makeParser = makeParser
    }

    private func parser(_ id: ConnectionID) -> ConnectionParser {
        if let p = parsers[id] { return p }
        let p = makeParser(id, self, parserCount)
        parsers[id] = p
        return p
    }

    func parsed(_ output: ParseOutput) { current!.outputs.append(output) }

    func run() {
        while true {
            let b = inbox.take()
            if b.stop { return }
            parse(b)
            outbox.put(b)
        }
    }

    /// Parses a batch's steps, in order, into its outputs.
    func parse(_ b: ParseBatch) {
        // Emptying a batch frees the events of its last round: they must be this thread's own.
        precondition(b.worker == index, "batch of worker \(b.worker) handed to worker \(index)")
        b.reset()
        current = b
        b.bytes.withUnsafeBytes { all in
            for op in b.ops {
                switch op {
                case .data(let id, let d, let start, let count, let offset, let frame, let park):
                    // The batch's own layout: always inside `all`, checked all the same.
                    if let chunk = WireBytes(all).slice(at: start, length: count) {
                        parser(id).feed(d, chunk.buffer, at: offset, frame: frame, parksWhenIdle: park)
                    }
                case .gap(let id, let d, let offset, let length, let frame):
                    parser(id).gap(d, at: offset, length: length, frame: frame)
                case .midstream(let id, let d):
                    parser(id).startsMidstream(d)
                case .finish(let id):
                    parser(id).finish()
                    parsers[id] = nil
                }
                b.ends.append(b.outputs.count)
            }
        }
        current = nil
        b.liveParsers = parserCount.live
    }
}

/// A blocking FIFO between two threads (mutex and condition variable).
final class Handoff<T>: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var items: [T] = []
    private var head = 0

    init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    func put(_ x: T) {
        pthread_mutex_lock(mutex)
        items.append(x)
        pthread_cond_signal(cond)
        pthread_mutex_unlock(mutex)
    }

    /// Whether `take` would return at once.
    var hasItem: Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return head < items.count
    }

    func take() -> T {
        pthread_mutex_lock(mutex)
        while head == items.count { pthread_cond_wait(cond, mutex) }
        let x = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        }
        pthread_mutex_unlock(mutex)
        return x
    }
}
