import S2Engine
import S2Model
import Testing

/// Kernel drops are reported once, prominently, and summed up with what they left unjudged (#15).
struct CaptureDropLedgerTests {
    let t0 = Timestamp(totalNanoseconds: 1_000_000_000)
    let t1 = Timestamp(totalNanoseconds: 2_000_000_000)

    @Test func noDropNoAnomalyNoSummary() {
        var l = CaptureDropLedger()
        #expect(l.observe(received: 100, dropped: 0, at: t0) == nil)
        #expect(l.observe(received: 250, dropped: 0, at: t1) == nil)
        #expect(l.summary(notJudged: ["gap": 3]) == nil)
        #expect(l.received == 250)
    }

    @Test func theFirstDropIsReportedOnceAndLaterOnesOnlyCounted() {
        var l = CaptureDropLedger()
        #expect(l.observe(received: 1_000, dropped: 0, at: t0) == nil)
        let first = l.observe(received: 1_500, dropped: 40, at: t1)
        #expect(first?.kind == .captureDrops)
        #expect(first?.bytes == 40)
        #expect(first?.time == t1)
        #expect(first?.message.contains("dropped 40 packets") == true)
        // a flood that goes on: counted, not one anomaly per poll
        for i in 1...50 { #expect(l.observe(received: 1_500 + UInt64(i) * 100, dropped: 40 + UInt64(i) * 60, at: t1) == nil) }
        #expect(l.dropped == 40 + 50 * 60)
        #expect(l.received == 1_500 + 50 * 100)
        #expect(l.firstDropAt == t1)
        let s = l.summary(notJudged: ["gap": 7, "capture-ended": 2])
        #expect(s == "capture drops: 3040 of 9540 packets (31.9 %) never reached s2scope; not judged: 2 capture-ended, 7 gap")
    }

    @Test func countersThatRestartAfterAReopenAreAddedNotLost() {
        var l = CaptureDropLedger()
        _ = l.observe(received: 500, dropped: 10, at: t0)
        // the interface was reopened: libpcap's counters start again from zero
        #expect(l.observe(received: 20, dropped: 5, at: t1) == nil)
        #expect(l.dropped == 15)
        #expect(l.received == 520)
        #expect(l.summary(notJudged: [:])?.hasSuffix("nothing was left unjudged") == true)
    }
}
