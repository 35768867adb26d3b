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
        are: --arch wrn-10-2 --epochs 9 --decay-epochs 6,8 --lr 1e-3 --warmup-iters 300 --no-augment \
        --sgld-steps 5 --sgld-clamp --energy-l2 0.1 (1 h 49 min on Fashion-MNIST at the 1.27 iterations/s measured on a 2-core machine; \
        --sgld-steps 10 gives a more robust, less accurate JEM at about 1.5× the time per iteration); the baseline: \
        --epochs 14 --decay-epochs 8,11 --px-weight 0. A killed run continues with `train --resume DIR`; \
        a non-finite or exploding loss rolls back to the last checkpoint with a new seed and half the learning rate.
        """)

    @Option(name: .long, help: "Training data SPEC (train split).") var data: String = "fashion-mnist"
    @Option(name: .long, help: "Architecture wrn-D-K (depth 6n+4, widen factor K).") var arch: String = "wrn-10-2"
    @Flag(name: .long, help: "Use batch norm (reference default: none).") var batchNorm = false
    @Option(name: .long, help: "Output directory: checkpoint.safetensors, model.safetensors, log.jsonl.") var out: String?
    @Option(name: .long, help: "Continue the run in DIR from its last checkpoint (its saved settings are used).") var resume: String?
    @Option(name: .long, help: "Epochs (default 10). With --resume: extend or shorten the run.") var epochs: Int?
    @Option(name: .long, help: "Batch size (labelled and sample batches each).") var batchSize: Int = 64
    @Option(name: .long, help: "Optimizer: adam or sgd.") var optimizer: String = "adam"
    @Option(name: .long, help: "Learning rate.") var lr: Float = 1e-4
    @Option(name: .long, help: "SGD momentum.") var momentum: Float = 0.9
    @Option(name: .long, help: "Weight decay.") var weightDecay: Float = 0
    @Flag(name: .long, help: "Nesterov momentum (SGD).") var nesterov = false
    @Option(name: .long, help: "Linear warm-up iterations.") var warmupIters: Int = 1000
    @Option(name: .long, help: "Epochs at which the learning rate is multiplied by --decay-rate, comma-separated. With --resume: replaces the saved schedule.") var decayEpochs: String?
    @Option(name: .long, help: "Learning-rate decay factor.") var decayRate: Float = 0.3
    @Option(name: .long, help: "Weight of the p(x) term (0: plain classifier).") var pxWeight: Float = 1
    @Option(name: .long, help: "Weight of the p(y|x) (cross-entropy) term.") var pyxWeight: Float = 1
    @Option(name: .long, help: "Weight of the p(x|y) term.") var pxyWeight: Float = 0
    @Option(name: .long, help: "L2 penalty on the energies of data and samples (0.1 stabilises).") var energyL2: Float = 0
    @Option(name: .long, help: "SGLD steps per iteration.") var sgldSteps: Int = 20
    @Option(name: .long, help: "SGLD step size α.") var sgldStepSize: Float = 1
    @Option(name: .long, help: "SGLD noise σ.") var sgldNoise: Float = 0.01
    @Flag(name: .long, help: "JEM++: clamp SGLD gradients to [−1,1] and samples to [0,1].") var sgldClamp = false
    @Option(name: .long, help: "Replay buffer size.") var bufferSize: Int = 10_000
    @Option(name: .long, help: "Probability of restarting a chain from fresh noise.") var reinitFreq: Float = 0.05
    @Option(name: .long, help: "Buffer initialisation: uniform (reference) or gaussian (JEM++, per class).") var bufferInit: String = "uniform"
    @Option(name: .long, help: "Gaussian noise σ on training inputs (normalised space).") var dataNoise: Float = 0.03
    @Flag(name: .long, help: "No pad-and-crop augmentation.") var noAugment = false
    @Flag(name: .long, help: "No horizontal flips (automatic for mnist and svhn: digits).") var noFlip = false
    @Option(name: .long, help: "Pad images to S×S (recorded in the model, applied to its inputs everywhere).") var padTo: Int?
    @Option(name: .long, help: "Repeat grey images to C channels (recorded in the model).") var toChannels: Int?
    @Option(name: .long, help: "Training examples held out for validation.") var valSize: Int = 1000
    @Option(name: .long, help: "Checkpoint every N iterations (and at each epoch end).") var checkpointEvery: Int = 200
    @Option(name: .long, help: "Divergence guard: roll back when |loss| exceeds this.") var lossBound: Float = 1e8
    @Option(name: .long, help: "Give up after this many roll-backs.") var maxRestarts: Int = 5
    @Option(name: .long, help: "Learning-rate factor at each roll-back.") var restartLrFactor: Float = 0.5
    @Option(name: .long, help: "Start a new run from this model's weights (jem, baseline or a file; same architecture), e.g. to fine-tune a classifier as a JEM.") var initFrom: String?
    @Option(name: .long, help: "Stop after N iterations in this invocation (resume later).") var maxIters: Int?
    @Option(name: .long, help: "Also print a plain progress line every N iterations (for logs; 0: off).") var logEvery: Int = 0
    @OptionGroup var runtime: RuntimeOptions

    func validate() throws {
        if resume == nil && out == nil { throw ValidationError("give --out DIR (a new run) or --resume DIR") }
        if sgldSteps < 0 { throw ValidationError("--sgld-steps must be ≥ 0, got \(sgldSteps)") }
        if OptimizerKind(rawValue: optimizer) == nil { throw ValidationError("--optimizer must be adam or sgd, got '\(optimizer)'") }
        if BufferInit(rawValue: bufferInit) == nil { throw ValidationError("--buffer-init must be uniform or gaussian, got '\(bufferInit)'") }
        if let m = maxIters, m < 1 { throw ValidationError("--max-iters must be ≥ 1") }
        if initFrom != nil && resume != nil { throw ValidationError("--init-from starts a new run; a resumed run continues from its checkpoint") }
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
        if resume != nil { try trainer.resume() }
        if let src = config.initFrom, resume == nil {
            let source = try ModelIO.load(path: src)
            guard let wrn = source.wideResNet else { throw ValidationError("--init-from \(src): only a Wide-ResNet (.safetensors) can initialise training") }
            try trainer.initializeWeights(from: wrn, source: src)
        }
        let err = FileHandle.standardError
        err.write("training \(config.arch) on \(data.name) (\(data.count - config.validationSize) train, \(config.validationSize) held out), \(trainer.totalIterations) iterations, \(config.pxWeight > 0 ? "JEM, \(config.sgld.steps) SGLD steps" : "baseline classifier"); from iteration \(trainer.state.iteration)\n".data(using: .utf8)!)
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
            guard progress.tty, Date().timeIntervalSince(progress.last) > 0.5 else { return }
            progress.last = Date()
            let rate = Double(p.iteration - startIt) / max(Date().timeIntervalSince(t0), 1e-9)
            let eta = rate > 0 ? Double(p.totalIterations - p.iteration) / rate : 0
            err.write(String(format: "\r\u{1B}[Kiter %d/%d  %.2f it/s  ETA %@  CE %.3f  p(x) %.3f  gap %.3f  acc %.1f%%",
                             p.iteration, p.totalIterations, rate, formatDuration(eta), p.ce, p.pxTerm, p.energyGap, 100 * p.accuracy).data(using: .utf8)!)
        })
        progress.finish()
        try trainer.saveModel()
        print("\(trainer.finished ? "finished" : "stopped") at iteration \(trainer.state.iteration)/\(trainer.totalIterations); model → \(trainer.modelPath)\(trainer.finished ? "" : "; continue with --resume \(dir)")")
    }
}
