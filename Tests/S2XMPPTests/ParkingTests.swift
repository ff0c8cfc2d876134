import Foundation
import S2Model
import S2XMPP
import Testing

/// A stream that waits after its header gives its expat parser up (parks) when asked to
/// (`parksWhenIdle`); parked or not, it parses the same.
struct ParkingTests {
    /// Where the stream header of `s2sStream` ends.
    static let headerEnd: Int = {
        let s = String(decoding: s2sStream, as: UTF8.self)
        return s.utf8.distance(from: s.startIndex, to: s.range(of: "xml:lang='en'>")!.upperBound)
    }()

    /// Feeds `s2sStream` in two chunks cut after its header; the live parsers after the first chunk.
    static func run(parks: Bool?) -> (liveAfterHeader: Int, events: [String]) {
        let rec = Recorder()
        let d = XMPPStreamDecoder(direction: .clientToServer, sink: rec)
        let count = ParserCount()
        d.parserCount = count
        if let parks { d.parksWhenIdle = parks }
        let frame = { (n: Int) in FrameRef(input: 0, number: n, time: Timestamp(seconds: Int64(n), nanoseconds: 0)) }
        s2sStream[..<headerEnd].withUnsafeBytes { d.feed($0, at: 0, frame: frame(1)) }
        let live = count.live
        s2sStream[headerEnd...].withUnsafeBytes { d.feed($0, at: UInt64(headerEnd), frame: frame(2)) }
        d.finish()
        #expect(count.live == 0)
        return (live, rec.events)
    }

    @Test func parksOnlyWhenAsked() {
        #expect(Self.run(parks: true).liveAfterHeader == 0)
        #expect(Self.run(parks: false).liveAfterHeader == 1)
        #expect(Self.run(parks: nil).liveAfterHeader == 0, "a decoder used alone parks")
    }

    @Test func parkedOrNotTheEventsAreTheSame() {
        let kept = Self.run(parks: false)
        #expect(kept.events.count == 7)  // open, db:result, message, presence, iq, message, close
        #expect(Self.run(parks: true).events == kept.events)
    }
}
