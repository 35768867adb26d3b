// Train.swift: `robust-eval train`: JEM training (or, with --px-weight 0, the plain classifier
// baseline) with checkpoints, resume and the divergence guard.
import ArgumentParser
import Foundation
import JEMCore

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a JEM (or a baseline classifier with --px-weight 0).",
        discussion: """
        Loss, sampler and optimiser defaults are the reference's (train_wrn_ebm.py): Adam lr 1e-4, batch 64, 1000 warm-up iterations, \
        20 SGLD steps of size 1 with noise 0.01, a 10000-image replay buffer re-initialised with probability \
        0.05, data noise 0.03. On a 2-core CPU, the settings that train the bundled JEM (scripts/train_bundled.sh) \
        are: --arch wrn-10-2 --epochs 8 --lr 1e-3 --warmup-iters 300 --no-augment \
        --sgld-steps 10 --sgld-clamp --energy-l2 0.1 (about 1 h 55 min on Fashion-MNIST at the 0.93 s per iteration measured on 2 cores on 2026-12-08; \
        the earlier jem-k5 used --sgld-steps 5 --epochs 9 --decay-epochs 6,8: 1 h 49 min, more accurate, far less robust); the baseline: \
        --epochs 14 --decay-epochs 8,11 --px-weight 0. A killed run continues with `train --resume DIR`; \
        a non-finite or exploding loss rolls back to the last checkpoint with a new seed and half the learning rate.
        """)

    @Option(name: .long, help: "Training data SPEC (train split).") var data: String = "fashion-mnist"
    @Option(name: .long, help: "Architecture wrn-D-K (depth 6n+4, widen factor K).") var arch: String = "wrn-10-2"
    @Flag(name: .long, help: "Use batch norm (reference default: none).") var batchNorm = false
    @Option(name: .long, help: "Output directory: checkpoint.safetensors, model.safetensors, log.jsonl.") var out: String?
    @Option(name: .long, help: "Continue the run in DIR from its last checkpoint (its saved settings are used).") var resume: String?
    @Option(name: .long, parsing: .unconditional, help: "Epochs (default 10). With --resume: extend or shorten the run.") var epochs: Int?
    @Option(name: .long, parsing: .unconditional, help: "Batch size (labelled and sample batches each).") var batchSize: Int = 64
    @Option(name: .long, help: "Optimizer: adam or sgd.") var optimizer: String = "adam"
    @Option(name: .long, parsing: .unconditional, help: "Learning rate.") var lr: Float = 1e-4
    @Option(name: .long, parsing: .unconditional, help: "SGD momentum.") var momentum: Float = 0.9
    @Option(name: .long, parsing: .unconditional, help: "Weight decay.") var weightDecay: Float = 0
    @Flag(name: .long, help: "Nesterov momentum (SGD).") var nesterov = false
    @Option(name: .long, parsing: .unconditional, help: "Linear warm-up iterations.") var warmupIters: Int = 1000
    @Option(name: .long, parsing: .unconditional, help: "Epochs at which the learning rate is multiplied by --decay-rate, comma-separated. With --resume: replaces the saved schedule.") var decayEpochs: String?
    @Option(name: .long, parsing: .unconditional, help: "Learning-rate decay factor.") var decayRate: Float = 0.3
    @Option(name: .long, parsing: .unconditional, help: "Weight of the p(x) term (0: plain classifier).") var pxWeight: Float = 1
    @Option(name: .long, parsing: .unconditional, help: "Weight of the p(y|x) (cross-entropy) term.") var pyxWeight: Float = 1
    @Option(name: .long, parsing: .unconditional, help: "Weight of the p(x|y) term.") var pxyWeight: Float = 0
    @Option(name: .long, parsing: .unconditional, help: "L2 penalty on the energies of data and samples (0.1 stabilises).") var energyL2: Float = 0
    @Option(name: .long, parsing: .unconditional, help: "SGLD steps per iteration.") var sgldSteps: Int = 20
    @Option(name: .long, parsing: .unconditional, help: "SGLD step size α.") var sgldStepSize: Float = 1
    @Option(name: .long, parsing: .unconditional, help: "SGLD noise σ.") var sgldNoise: Float = 0.01
    @Flag(name: .long, help: "JEM++: clamp SGLD gradients to [−1,1] and samples to [0,1].") var sgldClamp = false
    @Option(name: .long, parsing: .unconditional, help: "Replay buffer size.") var bufferSize: Int = 10_000
    @Option(name: .long, parsing: .unconditional, help: "Probability of restarting a chain from fresh noise.") var reinitFreq: Float = 0.05
    @Option(name: .long, help: "Buffer initialisation: uniform (reference) or gaussian (JEM++, per class).") var bufferInit: String = "uniform"
    @Option(name: .long, parsing: .unconditional, help: "Gaussian noise σ on training inputs (normalised space).") var dataNoise: Float = 0.03
    @Flag(name: .long, help: "No pad-and-crop augmentation.") var noAugment = false
    @Flag(name: .long, help: "No horizontal flips (automatic for mnist and svhn: digits).") var noFlip = false
    @Option(name: .long, parsing: .unconditional, help: "Pad images to S×S (recorded in the model, applied to its inputs everywhere).") var padTo: Int?
    @Option(name: .long, parsing: .unconditional, help: "Repeat grey images to C channels (recorded in the model).") var toChannels: Int?
    @Option(name: .long, parsing: .unconditional, help: "Training examples held out for validation.") var valSize: Int = 1000
    @Option(name: .long, parsing: .unconditional, help: "Checkpoint every N iterations (and at each epoch end).") var checkpointEvery: Int = 200
    @Option(name: .long, parsing: .unconditional, help: "Divergence guard: roll back when |loss| exceeds this.") var lossBound: Float = 1e8
    @Option(name: .long, parsing: .unconditional, help: "Give up after this many roll-backs.") var maxRestarts: Int = 5
    @Option(name: .long, parsing: .unconditional, help: "Semi-supervised: p(y|x) sees only N labelled images per class (a seeded choice), p(x) every training image. With --px-weight 0: a classifier trained on that labelled subset alone.") var labelsPerClass: Int?
    @Option(name: .long, parsing: .unconditional, help: "Learning-rate factor at each roll-back.") var restartLrFactor: Float = 0.5
    @Option(name: .long, help: "Start a new run from this model's weights (jem, baseline or a file; same architecture), e.g. to fine-tune a classifier as a JEM.") var initFrom: String?
    @Option(name: .long, parsing: .unconditional, help: "Stop after N iterations in this invocation (resume later).") var maxIters: Int?
    @Option(name: .long, parsing: .unconditional, help: "Also print a plain progress line every N iterations (for logs; 0: off).") var logEvery: Int = 0
    @Flag(name: .long, help: "Also keep each epoch's model as DIR/model-epochN.safetensors (model.safetensors holds only the latest); allowed with --resume.") var keepEpochModels = false
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if resume == nil && out == nil { throw ValidationError("give --out DIR (a new run) or --resume DIR") }
        if sgldSteps < 0 { throw ValidationError("--sgld-steps must be ≥ 0, got \(sgldSteps)") }
        if OptimizerKind(rawValue: optimizer) == nil { throw ValidationError("--optimizer must be adam or sgd, got '\(optimizer)'") }
        if BufferInit(rawValue: bufferInit) == nil { throw ValidationError("--buffer-init must be uniform or gaussian, got '\(bufferInit)'") }
        if let m = maxIters, m < 1 { throw ValidationError("--max-iters must be ≥ 1") }
        if initFrom != nil && resume != nil { throw ValidationError("--init-from starts a new run; a resumed run continues from its checkpoint") }
        if let out, resume == nil { try Check.outputDirectory(out, "--out") }
        try Check.range(epochs, 1...10_000, "--epochs")
        try Check.range(batchSize, 1...maxBatchSize, "--batch-size")
        try Check.positive(lr, "--lr")
        try Check.finite(momentum, 0...1, "--momentum")
        try Check.finite(weightDecay, 0...1, "--weight-decay")
        try Check.range(warmupIters, 0...10_000_000, "--warmup-iters")
        try Check.finite(decayRate, 0...10, "--decay-rate")
        for (v, f) in [(pxWeight, "--px-weight"), (pyxWeight, "--pyx-weight"), (pxyWeight, "--pxy-weight"), (energyL2, "--energy-l2")] {
            try Check.finite(v, 0...1e6, f)
        }
        try Check.range(sgldSteps, 0...10_000, "--sgld-steps")
        try Check.positive(sgldStepSize, "--sgld-step-size")
        try Check.finite(sgldNoise, 0...10, "--sgld-noise")
        try Check.range(bufferSize, 1...10_000_000, "--buffer-size")
        try Check.finite(reinitFreq, 0...1, "--reinit-freq")
        try Check.finite(dataNoise, 0...10, "--data-noise")
        try Check.range(padTo, 1...4096, "--pad-to")
        try Check.range(toChannels, 1...WRNConfig.maxInChannels, "--to-channels")
        try Check.range(valSize, 0...10_000_000, "--val-size")
        try Check.range(checkpointEvery, 1...10_000_000, "--checkpoint-every")
        if let n = labelsPerClass, n < 1 { throw ValidationError("--labels-per-class must be ≥ 1 (labelled images per class), got \(n)") }
        try Check.positive(lossBound, "--loss-bound")
        try Check.range(maxRestarts, 0...100, "--max-restarts")
        try Check.finite(restartLrFactor, 0...1, "--restart-lr-factor")
        try Check.range(logEvery, 0...10_000_000, "--log-every")
        let (d, k) = try WRNConfig.parseArch(arch)
        try WRNConfig(depth: d, width: k, inChannels: 1, numClasses: 2).validate()
        for e in try parseDecayEpochs() where e < 0 { throw ValidationError("--decay-epochs must be ≥ 0, got \(e)") }
        _ = try DataSpec.parse(data)
    }

    func parseDecayEpochs() throws -> [Int] {
        try (decayEpochs ?? "").split(separator: ",").map { s in
            guard let v = Int(s.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--decay-epochs: '\(s)' is not an integer") }
            return v
        }
    }

    func makeConfig() throws -> TrainConfig {
        var c = TrainConfig()
        c.data = data; c.arch = arch; c.norm = batchNorm ? .batch : .none; c.epochs = epochs ?? 10; c.batchSize = batchSize
        c.optimizer.kind = OptimizerKind(rawValue: optimizer)!; c.optimizer.momentum = momentum
        c.optimizer.weightDecay = weightDecay; c.optimizer.nesterov = nesterov
        c.lr = lr; c.warmupIterations = warmupIters
        c.decayEpochs = try parseDecayEpochs()
        c.decayRate = decayRate; c.pxWeight = pxWeight; c.pyxWeight = pyxWeight; c.pxyWeight = pxyWeight; c.energyL2 = energyL2
        c.sgld = SGLDConfig(stepSize: sgldStepSize, noise: sgldNoise, steps: sgldSteps, clampGradient: sgldClamp, clampSamples: sgldClamp)
        c.bufferSize = bufferSize; c.reinitFrequency = reinitFreq; c.bufferInit = BufferInit(rawValue: bufferInit)!
        c.dataNoise = dataNoise; c.augment = !noAugment; c.flip = !noFlip && !(data.hasPrefix("mnist") || data.hasPrefix("svhn"));
        c.padTo = padTo; c.toChannels = toChannels; c.validationSize = valSize; c.seed = runtime.seed
        c.checkpointEvery = checkpointEvery; c.lossBound = lossBound; c.maxRestarts = maxRestarts; c.restartLRFactor = restartLrFactor
        c.labelsPerClass = labelsPerClass
        return c
    }

    func run() throws {
        runtime.apply()
        let config: TrainConfig
        let dir: String
        if let resume {
            dir = resume
            let ck = (resume as NSString).appendingPathComponent("checkpoint.safetensors")
            let f = try SafeTensorsFile(path: ck)
            guard var c = TrainConfig.fromMetadata(f.metadata) else {
                throw ValidationError("\(ck) is not a robust-eval training checkpoint")
            }
            // The schedule may be changed on resume; everything else is the saved run's.
            if let e = epochs { c.epochs = e }
            if decayEpochs != nil { c.decayEpochs = try parseDecayEpochs() }
            config = c
        } else {
            dir = out!
            var c = try makeConfig()
            if let initFrom { c.initFrom = try BundledModels.resolve(initFrom) }
            config = c
            if FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent("checkpoint.safetensors")) {
                throw ValidationError("\(dir) already holds a checkpoint; continue it with --resume \(dir) or choose another --out")
            }
        }
        let data = try config.trainingData()
        let trainer = try Trainer(config: config, data: data, outDir: dir)
        if let w = MPIWorld.current {
            guard config.batchSize >= w.size else {
                throw ValidationError("--batch-size \(config.batchSize) is smaller than the \(w.size) MPI ranks: every rank needs a slice of each batch")
            }
            trainer.group = MPITrainingGroup(w)
        }
        if resume != nil { try trainer.resume() }
        trainer.keepEpochModels = keepEpochModels
        if let src = config.initFrom, resume == nil {
            let source = try ModelIO.load(path: src)
            guard let wrn = source.wideResNet else { throw ValidationError("--init-from \(src): only a Wide-ResNet (.safetensors) can initialise training") }
            try trainer.initializeWeights(from: wrn, source: src)
        }
        let err = FileHandle.standardError
        if let w = MPIWorld.current, w.rank == 0 {
            err.write("data-parallel over \(w.size) MPI ranks (\(Runtime.threads) thread(s) each): each takes 1/\(w.size) of every batch of \(config.batchSize) data and \(config.batchSize) samples; \(trainer.bytesPerIteration) bytes sent per rank per iteration\n".data(using: .utf8)!)
        }
        if MPIWorld.current == nil || MPIWorld.current!.rank == 0 { err.write("training \(config.arch) on \(data.name) (\(data.count - config.validationSize) train, \(config.validationSize) held out), \(trainer.totalIterations) iterations, \(config.pxWeight > 0 ? "JEM, \(config.sgld.steps) SGLD steps" : "baseline classifier")\(trainer.labelled.map { "; p(y|x) on \($0.count) labelled images (\(config.labelsPerClass ?? 0) per class)" } ?? ""); from iteration \(trainer.state.iteration)\n".data(using: .utf8)!) }
        let progress = Progress(total: trainer.totalIterations, label: "iter")
        let startIt = trainer.state.iteration, t0 = Date()
        try trainer.run(stopAfter: maxIters, log: { msg in
            progress.finish()
            print(msg); fflush(stdout)
        }, progress: { p in
            if logEvery > 0, p.iteration % logEvery == 0 {
                let rate = Double(p.iteration - startIt) / max(Date().timeIntervalSince(t0), 1e-9)
                print(String(format: "iter %d/%d  %.2f it/s  ETA %@  CE %.3f  p(x) %.3f  gap %.3f  acc %.1f%%", p.iteration, p.totalIterations, rate,
                             formatDuration(rate > 0 ? Double(p.totalIterations - p.iteration) / rate : 0), p.ce, p.pxTerm, p.energyGap, 100 * p.accuracy))
                fflush(stdout)
            }
            // A redrawn line on a terminal; otherwise a plain line on stderr about every 10 s
            // (unless --log-every already prints lines to stdout).
            let every: Double = progress.tty ? 0.5 : 10
            guard !progress.quiet, progress.tty || logEvery == 0, Date().timeIntervalSince(progress.last) > every else { return }
            progress.last = Date()
            let rate = Double(p.iteration - startIt) / max(Date().timeIntervalSince(t0), 1e-9)
            let eta = rate > 0 ? Double(p.totalIterations - p.iteration) / rate : 0
            err.write(String(format: "%@iter %d/%d  %.2f it/s  ETA %@  CE %.3f  p(x) %.3f  gap %.3f  acc %.1f%%%@", progress.tty ? "\r\u{1B}[K" : "",
                             p.iteration, p.totalIterations, rate, formatDuration(eta), p.ce, p.pxTerm, p.energyGap, 100 * p.accuracy,
                             progress.tty ? "" : "\n").data(using: .utf8)!)
        })
        progress.finish()
        try trainer.saveModel()
        print("\(trainer.finished ? "finished" : "stopped") at iteration \(trainer.state.iteration)/\(trainer.totalIterations); model → \(trainer.modelPath)\(trainer.finished ? "" : "; continue with --resume \(dir)")")
    }
}
