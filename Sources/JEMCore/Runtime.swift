// Runtime.swift: process-wide kernel configuration: thread count and allocator behaviour.
import CJEMKernels
import Foundation

public enum Runtime {
    nonisolated(unsafe) private static var configured = false

    /// Configures the kernels for `threads` threads (0: all cores). Safe to call again.
    public static func configure(threads: Int = 0) {
        configured = true
        jem_runtime_init(Int32(threads))
    }

    public static var threads: Int {
        if !configured { configure() }
        return Int(jem_num_threads())
    }

    /// Batch-invariant kernels: an image's outputs do not depend on the batch it is in (kernel
    /// choices depend on one image's shape only). Attacks that promise per-example determinism
    /// turn it on for their run.
    public static var batchInvariant: Bool {
        get { jem_batch_invariant() != 0 }
        set { jem_set_batch_invariant(newValue ? 1 : 0) }
    }

    /// In batch-invariant mode, rows come in aligned groups of this size that always travel
    /// together (an example's SGLD chains): kernels may batch within a group. Default 1.
    public static var invariantGroup: Int {
        get { Int(jem_invariant_group()) }
        set { jem_set_invariant_group(Int32(newValue)) }
    }

    /// Runs `body` with rows grouped by `size` (see `invariantGroup`).
    public static func grouped<R>(_ size: Int, _ body: () throws -> R) rethrows -> R {
        let old = invariantGroup
        invariantGroup = size
        defer { invariantGroup = old }
        return try body()
    }

}
