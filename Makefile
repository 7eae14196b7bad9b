# Fresh-machine entry points (the README shows these two commands).
#   make quickstart   set up .venv, write the scikit-image samples, train the quickstart model
#   make test         set up .venv and run the test suite
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/activate setup.py
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0          # the CPU wheel; install it first or pip pulls a CUDA build
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q --no-deps --no-build-isolation basicsr==1.4.2   # test oracle only
	touch $@

setup: $(VENV)/.installed

quickstart: setup
	$(BIN)/python scripts/prepare_skimage_samples.py
	$(BIN)/restore-train -opt options/train/quickstart_skimage.yml

test: setup
	$(BIN)/python -m pytest -q tests

# Everything but the `slow`-marked tests (torchrun, the soak, Chromium, subprocess trainings, full
# test-set protocol runs), one pytest-xdist worker per CPU: 1.3 min on an idle 2-core AMD EPYC
# (2.1 min in one process), 2026-12-02; the goal is under 2 minutes.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow" -n auto tests

# The published-models lane: spandrel (and the torchvision it needs) in a venv of its own, so the
# core keeps torch==2.13.0 without torchvision. Runs only the `models`-marked tests.
MODELS_VENV ?= .venv-models
MODELS_BIN = $(MODELS_VENV)/bin

$(MODELS_VENV)/.installed: setup.py
	$(PYTHON) -m venv $(MODELS_VENV)
	$(MODELS_BIN)/pip install -q --upgrade pip
	$(MODELS_BIN)/pip install -q torch==2.14.1 torchvision==0.29.1 spandrel==0.4.2
	$(MODELS_BIN)/pip install -q -e '.[test,models]'
	touch $@

test-models: $(MODELS_VENV)/.installed
	$(MODELS_BIN)/python -m pytest -q -m models tests/test_published_models.py

# Every results file the docs quote (tests/test_docs_tables.py checks the quotes), rewritten by the
# command that measures it; each file's first line names the command and the machine. Times: this
# 2-core CPU, idle unless said ("a slow day": the same VM computing 2-3x slower). Not part of `test`:
# about 5 hours in all (the sum of the times below, most on slow days or under load).
# tests/test_make_results.py checks that every command below exists and that its parser takes its flags.
results: setup
	# ~1 min (docs/protocol.md): the bicubic rows under both protocols
	$(BIN)/python scripts/protocol_bicubic.py
	# ~15 s of CPU, measured (4 min wall under load 7-8): docs/protocol.md, one protocol component changed at a time
	$(BIN)/python scripts/protocol_changes.py
	# ~20 s, measured under load 8-9 (5 s of CPU): docs/csc.md, CSCConv2d's defaults against SDNet's settings
	$(BIN)/python scripts/csc_sdnet_difference.py
	# ~20 s, measured: params and MACs of every arch (docs/nsr.md)
	$(BIN)/restore-flops --all --out results/nsr/flops.md
	# 16 min, measured on a slow day (the trainings, then calibration, tests, cost): docs/csc.md
	$(BIN)/python scripts/exp_csc_denoise.py
	# ~20 min (19 min under load 8-12 for the same work in three runs): docs/blurpool.md
	$(BIN)/python scripts/exp_blurpool.py --iters 300 --eq-images 12 --threads 1 --table results/blurpool/unet_dn25.md
	# 52 s + 93 s, measured on a slow day: the CPU-tiny NSR to iteration 250, then restore-bench on it
	# (docs/nsr.md, docs/benchmarks.md)
	$(BIN)/restore-train -opt options/train/NSR/train_NSR_SRx2_T91_cpu_tiny.yml --set train.total_iter=250
	$(BIN)/restore-bench --model NSR_tiny=NSR:experiments/NSR_SRx2_T91_cpu_tiny/models/net_g_250.pth,upscale=2,num_feat=32,num_block=8,width_mult=1,k=4,d=8 \
		--model NSR_tiny_tile=NSR:experiments/NSR_SRx2_T91_cpu_tiny/models/net_g_250.pth,upscale=2,num_feat=32,num_block=8,width_mult=1,k=4,d=8,gate_region=tile \
		--sets Set5 Set14 BSD100 --scales 2 -o results/bench_nsr_tiny --latency-runs 3 --no-html --no-progress
	# ~1.2 min, measured idle (docs/nsr.md, "Speed"): NSR inference against WDSR-A; wants an idle machine
	$(BIN)/python scripts/bench_nsr.py --pinned-malloc --repeats 7 --table results/nsr/speed.md
	# 10 s and 76 s, measured idle (docs/performance.md, "Where the cost goes"): one NSR block conv
	# profiled per formulation beside the plain conv, then whole steps, 1 thread; wants an idle machine
	$(BIN)/python scripts/bench_nsr_train.py --layer --threads 1 --formulations grouped fused \
		--profile results/bench_train/nsr_layer_profile.md
	$(BIN)/python scripts/bench_nsr_train.py --threads 1 --formulations fused --rounds 1 \
		--profile results/bench_train/nsr_step_profile.md
	# ~2 min, measured on a slow day (docs/performance.md, "A longer run"): the same with two threads
	$(BIN)/python scripts/bench_nsr_train.py --threads 2 --formulations fused --rounds 2 \
		--profile results/bench_train/nsr_step_profile_2threads.md
	# 6.3 min, measured on a slow day (a first compiled step of 66.5 s idle, then 2 rounds of 3 steps per
	# side; docs/performance.md, "torch.compile"): NSR with train.compile beside BasicSR and restore;
	# wants an idle machine
	$(BIN)/python scripts/bench_train.py --archs NSR --compile --sides basicsr restore restore-compile --rounds 2 \
		> results/bench_train/nsr_compile.txt.tmp && mv results/bench_train/nsr_compile.txt.tmp results/bench_train/nsr_compile.txt
	# 13.5 min (0.25 MP photos), then ~50 min (~3 MP photos, the seven zoo models and EDSR, untiled and
	# --tile 512; the zoo ~25 min by its rows' times, EDSR 22 min wall), all measured on slow days:
	# restore-infer against its bare forward (docs/inference.md), reports to results/bench_infer/latest/;
	# wants an idle machine
	$(BIN)/python scripts/bench_infer.py --quick --out results/bench_infer/latest/quick.txt
	$(BIN)/python scripts/bench_infer.py --images 1 --out results/bench_infer/latest/full.txt
	# ~1 min, measured on a slow day (docs/performance.md, "What bounds EDSR"): EDSR's conv passes per
	# memory format against BasicSR's step; wants an idle machine
	$(BIN)/python scripts/bench_conv_ops.py --out results/bench_train/latest/conv_ops.txt
	# ~1 min, measured idle: the README's worked example (tiny EDSR, 500 iterations, then restore-test)
	$(BIN)/python scripts/readme_example.py
	# 47 s, measured on a slow day: sub-images, LMDBs and nine timed loader runs (docs/data.md)
	$(BIN)/python scripts/bench_data.py --table results/data/loading_speed.md
	# 19 min, measured on a slow day (80 iterations of each zoo recipe, end to end and bare; docs/performance.md):
	# restore-train against its bare step; wants an idle machine
	$(BIN)/python scripts/bench_train_e2e.py --table results/bench_train/e2e.md
	# 77 min, measured on a slow day on the AVX2 AMD EPYC, where the bf16 benchmarks are left out (no
	# oneDNN bf16 kernels: EDSR's first bf16 step took 361 s), before the two AVX-512 reports were added
	# (13 min more on the idle AVX-512 AMD EPYC, bf16 included); with bf16 kernels the bf16 sides run too:
	# the training benchmarks against BasicSR, reports to results/bench_train/latest/, then the tables
	# of docs/performance.md
	$(BIN)/python scripts/performance_tables.py --run
	# ~1.5 hours under load, measured (docs/features.md; each file gives its CPU and wall time): at nice 19
	# beside two trainings, restore-leaks --calibrate 38 min (9.8 CPU-min), the default search 15 min
	# (8.2), the Train400 search with 64 px windows 13 min (8.9); restore-probe-features, writing the
	# degradation task, standardised 14 min (10.0); then raw (--no-standardize) 9.4 min (8.1)
	$(BIN)/restore-leaks --train T91 BSD200 Train400 --test BSD100 --calibrate --out results/leaks_calibration \
		--table results/features/leaks_calibration.md
	$(BIN)/restore-leaks --train T91 BSD200 Train400 --test Set5 Set14 BSD100 BSD68 CBSD68 Set12 Kodak24 McMaster LIVE1 Classic5 \
		--out results/leaks --table results/features/leaks_default.md
	$(BIN)/restore-leaks --train Train400 --test Set5 Set14 BSD100 BSD68 CBSD68 Set12 Kodak24 McMaster LIVE1 Classic5 \
		--window 64 --out results/leaks_train400_w64 --table results/features/leaks_train400_w64.md
	$(BIN)/restore-probe-features --make-degradation-task results/degradation_task --json results/probe.json \
		--table results/features/probe_standardised.md
	$(BIN)/restore-probe-features --train results/degradation_task/train --test results/degradation_task/test \
		--no-standardize --table results/features/probe_raw.md
	# seconds: the tables that README.md and docs/ quote, refreshed from the results files above
	$(BIN)/python scripts/quote_tables.py

.PHONY: setup quickstart test test-fast test-models results
