// MPIWorld.swift: robust-eval under an MPI launcher (`mpirun -n N robust-eval <command> ...`).
// Started only when a launcher set the process up; otherwise the binary runs as a single process.
// Ranks > 0 stay quiet on stdout; an error on any rank is printed naming the rank and ends the job.
import CMPI
import Foundation
import JEMCore

struct MPIWorld {
    let rank: Int
    let size: Int
    /// Ranks on this node (threads per rank default to the node's cores divided by them).
    let localSize: Int

    nonisolated(unsafe) static var current: MPIWorld?

    static func message(_ rc: Int32) -> String {
        var buf = [CChar](repeating: 0, count: 512)
        jem_mpi_error_string(rc, &buf, 512)
        return String(cString: buf)
    }

    /// Initialises MPI when launched by mpirun/srun. A launch of one rank runs as a single process.
    static func startIfLaunched() {
        guard jem_mpi_launched() != 0 else { return }
        var r: Int32 = 0, s: Int32 = 0, l: Int32 = 0
        let rc = jem_mpi_init(&r, &s, &l)
        guard rc == 0 else {
            FileHandle.standardError.write(Data("Error: MPI initialisation failed: \(message(rc))\n".utf8))
            exit(70)
        }
        guard s > 1 else { _ = jem_mpi_finalize(); return }
        current = MPIWorld(rank: Int(r), size: Int(s), localSize: max(Int(l), 1))
        if r != 0 { _ = freopen("/dev/null", "w", stdout) }
    }

    /// Ends the job from this rank with a message naming it.
    static func fail(_ text: String, code: Int32) -> Never {
        guard let w = current else { RobustEval.fail(text, code: code) }
        // An error every rank meets (a bad flag) is told once, by rank 0, whose abort ends the others;
        // a rank that fails alone still ends the job a moment later.
        if w.rank != 0 { sleep(2) }
        FileHandle.standardError.write(Data("Error (MPI rank \(w.rank) of \(w.size)): \(text)\n".utf8))
        jem_mpi_abort(code == 0 ? 1 : code)
        exit(code)
    }

    static func finish() {
        if current != nil { _ = jem_mpi_finalize() }
    }

    /// Gathers every rank's bytes at rank 0 (rank order); nil on other ranks.
    static func gather(_ d: Data) throws -> [Data]? {
        guard let w = current else { return [d] }
        var lens = [Int64](repeating: 0, count: w.size)
        var out: UnsafeMutableRawPointer? = nil
        let rc = d.withUnsafeBytes { jem_mpi_gather_bytes($0.baseAddress, Int64(d.count), &out, &lens) }
        guard rc == 0 else { throw JEMError.invalidArgument("MPI gather failed at rank \(w.rank): \(message(rc))") }
        guard w.rank == 0, let out else { return nil }
        defer { free(out) }
        var parts: [Data] = [], at = 0
        for l in lens { parts.append(Data(bytes: out + at, count: Int(l))); at += Int(l) }
        return parts
    }

    /// In-place sum of `buf` over all ranks.
    static func allreduceSum(_ buf: UnsafeMutablePointer<Float>, count: Int) throws {
        guard let w = current else { return }
        let rc = jem_mpi_allreduce_sum_float(buf, Int64(count))
        guard rc == 0 else { throw JEMError.invalidArgument("MPI allreduce failed at rank \(w.rank): \(message(rc))") }
    }

    static func allreduceSum(_ buf: UnsafeMutablePointer<Double>, count: Int) throws {
        guard let w = current else { return }
        let rc = jem_mpi_allreduce_sum_double(buf, Int64(count))
        guard rc == 0 else { throw JEMError.invalidArgument("MPI allreduce failed at rank \(w.rank): \(message(rc))") }
    }
}

/// The MPI ranks as a data-parallel training group.
final class MPITrainingGroup: TrainingGroup {
    let world: MPIWorld
    init(_ world: MPIWorld) { self.world = world }
    var rank: Int { world.rank }
    var size: Int { world.size }
    func sum(_ buf: UnsafeMutablePointer<Float>, count: Int) throws { try MPIWorld.allreduceSum(buf, count: count) }
    func sum(_ buf: UnsafeMutablePointer<Double>, count: Int) throws { try MPIWorld.allreduceSum(buf, count: count) }
    func allgather(_ send: Tensor, counts: [Int], rowSize: Int) throws -> Tensor {
        let total = counts.reduce(0, +)
        let out = Tensor(shape: [total] + Array(send.shape.dropFirst()))
        let c = counts.map { Int32($0 * rowSize) }
        var displs = [Int32](repeating: 0, count: counts.count)
        for r in 1..<max(counts.count, 1) { displs[r] = displs[r - 1] + c[r - 1] }
        let rc = jem_mpi_allgatherv_float(send.data, Int32(send.count), out.data, c, displs)
        guard rc == 0 else { throw JEMError.invalidArgument("MPI allgather failed at rank \(world.rank): \(MPIWorld.message(rc))") }
        return out
    }
}
