@testable import S2Dialback
import S2Model
import Testing

/// `ConnectionModel.isValidated` remembers the last pair it found: the memory must follow every
/// change of VP(c), removals included (an `invalid` answer after a `valid` one).
struct ValidatedPairTests {
    @Test func theRememberedPairFollowsEveryChangeOfVP() {
        let c = ConnectionModel(id: ConnectionID(1), client: "10.0.0.1:40000", server: "10.0.0.2:5269", clientAddress: "10.0.0.1",
                                serverAddress: "10.0.0.2", input: 0, frame: FrameRef(input: 0, number: 1, time: Timestamp(seconds: 0, nanoseconds: 0)))
        let p = DomainPair(sender: "a.example", target: "b.example")
        #expect(!c.isValidated(p))
        c.validated[.clientToServer].insert(p)
        #expect(c.isValidated(p))
        #expect(c.isValidated(p))
        #expect(!c.isValidated(p, .serverToClient))
        #expect(!c.isValidated(DomainPair(sender: "a.example", target: "c.example")))
        c.validated[.clientToServer].remove(p)
        #expect(!c.isValidated(p))
        c.validated[.clientToServer].insert(DomainPair(sender: "a.example", target: "c.example"))
        #expect(!c.isValidated(p))
        #expect(c.isValidated(DomainPair(sender: "A.Example", target: "c.example")))
    }
}
