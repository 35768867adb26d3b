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
}
