#!/bin/sh
# Turns the benchmark log bench/results.txt (written by bench/run.sh: one line
# per case "family key=value ...", '#' lines for the run's date, machine,
# load and durations) into bench/RESULTS.md (a table per benchmark family and
# which targets of issue #7 hold in this run) and bench/results.json (every
# case with its figures as numbers, the same target verdicts).
# Usage: sh bench/make_results.sh [results.txt [RESULTS.md [results.json]]]
# Needs only a POSIX awk. Tables show every key a family prints, plus
# "torch/ours" (reference time over ours: > 1 means ours is faster) when a
# family prints ms/torch_ms or seconds/torch_seconds without a ratio of its
# own, and "torch work MB" (PyTorch's peak RSS minus its RSS after importing
# torch) when it prints torch_base_mb. PyTorch is measured in four thread
# settings (bench/bench_common.h); its figures are its fastest, named by
# torch_threads / torch_blas_threads, and the "# torch ..." lines with every
# setting's time are listed at the end of RESULTS.md. The speed targets compare
# our best thread count with PyTorch's best setting.
in=${1:-$(dirname "$0")/results.txt}
dir=$(dirname "$in")
md=${2:-$dir/RESULTS.md}
json=${3:-$dir/results.json}
[ -r "$in" ] || { echo "make_results: cannot read $in" >&2; exit 1; }

prog='
BEGIN { PINNING = "torch threads/OpenBLAS threads = 1/1, 2/2, 1/2, 2/1, where torch threads = torch.set_num_threads = OMP_NUM_THREADS = MKL_NUM_THREADS and OpenBLAS threads = OPENBLAS_NUM_THREADS" }
function isnum(v) { return v ~ /^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$/ }
function jstr(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
function jval(v) { return (v == "NA" || v == "") ? "null" : isnum(v) ? v : jstr(v) }
function get(i, k) { return ((i, k) in val) ? val[i, k] : "" }
function has(i, k) { return isnum(get(i, k)) }
function fmt2(x) { return sprintf("%.2f", x) }
function family_note(f) {
    if (f == "gemm") return "Our `gemm()` against OpenBLAS `cblas_sgemm` in the same process, interleaved in rounds; GFLOP/s are medians. ratio = ours / OpenBLAS (> 1: ours faster)."
    if (f == "conv") return "`conv2d_forward` on the convolution kinds of EfficientNet (batch 1, no bias) against `F.conv2d`, ours at 1 and 2 threads; best time over repetitions after 5 warm-up runs on both sides. torch_ms: PyTorch in its fastest setting (" PINNING "), the same for both rows of a case."
    if (f == "backbone") return "Feature extraction of one square image up to the deepest default tap (random weights), against the PyTorch reference, ours at 1 and 2 threads; best times after one warm-up run on both sides. torch_ms: PyTorch in its fastest setting (" PINNING "), the same for both rows of a case; torch_cpu_ms its lowest CPU time over the settings. peak_mb: peak RSS of a fresh child process per case; torch_peak_mb of the python process of the fastest setting (torch_base_mb: its RSS after importing torch)."
    if (f == "flow_step") return "One HGAD training step of one level (N = 4096, D = 200, Dc = 256, K = 12: flow, hierarchical-prior losses, backward, Adam); medians after one warm-up step on both sides. PyTorch runs once in each setting (" PINNING "). torch_seconds: its fastest setting with at most `threads` threads in each pool (the same core budget: 1/1 for 1 thread), named by torch_threads / torch_blas_threads; torch_best_seconds: its fastest setting overall (torch_best_threads / torch_best_blas_threads); speedup_vs_best = torch_best_seconds / seconds."
    if (f == "epoch") return "One training meta epoch (full phase: sub_epochs passes, batch 8, one step per level per batch) over the cached tf_efficientnet_b6 features of a synthetic data set; PyTorch runs the same epoch over the same exported features in its fastest setting (" PINNING "; a one-sub-epoch pilot in each setting picks it, then the full epoch runs in it), the same for both rows. peak_mb: the epoch child process; cache_seconds: building the feature cache (set-up, not compared)."
    if (f == "score") return "One image scored end to end (PNG decode, preprocessing, mobilenet_v2 multiscale encoder, flows and evidence, anomaly maps at msk, score); medians after one warm-up run on both sides; PyTorch: the same pipeline with PIL, torchvision and scipy, in its fastest setting (" PINNING "), the same for both rows of a size."
    if (f == "scaling") return "Training-step cost as N, D, K and the image size double, and at 1 and 2 threads (tables by series and plot: [scaling.md](scaling.md), [scaling.png](scaling.png)); medians, fresh processes for peak memory. PyTorch with the same core budget: pinned to 1/1 in the 1-thread rows; at 2 threads its fastest setting (" PINNING ")."
    return ""
}
function plural(t, what) { return t " " what (t == 1 ? "" : "s") }
function ours_set(t) { return "ours " plural(t, "thread") }
function torch_set(t, b) { return t == "" || b == "" ? "PyTorch (setting not recorded)" : "PyTorch " plural(t, "thread") ", OpenBLAS " b }
# Our best row against the best of PyTorch for each case of family F: a case is the
# values of the space-separated keys `keylist`; ours = the least `ok` among its
# rows (thread count `othr`), PyTorch = the least `tk` (setting tt / tb). Fills
# g_n cases g_case[1 .. g_n] with g_ours, g_othr, g_torch, g_tt, g_tb.
function best_vs_best(F, keylist, ok, othr, tk, tt, tb,    i, j, nk, kl, c, g, label) {
    g_n = 0; split("", g_seen); split("", g_ours); split("", g_torch)
    nk = split(keylist, kl, " ")
    for (i = 1; i <= n; i++) {
        if (fam[i] != F || !has(i, ok)) continue
        c = ""; label = ""
        for (j = 1; j <= nk; j++) {
            c = c SUBSEP get(i, kl[j])
            label = label (label == "" ? "" : " ") (kl[j] == "name" || kl[j] == "kind" ? get(i, kl[j]) : kl[j] "=" get(i, kl[j]))
        }
        if (!(c in g_seen)) { g_seen[c] = ++g_n; g_case[g_n] = label }
        g = g_seen[c]
        if (!(g in g_ours) || get(i, ok) + 0 < g_ours[g]) { g_ours[g] = get(i, ok) + 0; g_ours_s[g] = get(i, ok); g_othr[g] = get(i, othr) }
        if (has(i, tk) && (!(g in g_torch) || get(i, tk) + 0 < g_torch[g])) { g_torch[g] = get(i, tk) + 0; g_torch_s[g] = get(i, tk); g_tt[g] = get(i, tt); g_tb[g] = get(i, tb) }
    }
}
# Adds the target "NAME" over the cases best_vs_best found: each holds when
# the best of PyTorch / our best >= `min`; `unit` follows the times.
function add_speed_target(name, min, unit, none,    g, cnt, pass, d, r) {
    cnt = pass = 0; d = ""
    for (g = 1; g <= g_n; g++) {
        if (!(g in g_torch)) continue
        cnt++; r = g_torch[g] / g_ours[g]
        if (r >= min) pass++
        d = d (d == "" ? "" : "; ") g_case[g] ": " ours_set(g_othr[g]) " " g_ours_s[g] " " unit " vs " torch_set(g_tt[g], g_tb[g]) " " g_torch_s[g] " " unit ": " fmt2(r) "x"
    }
    add_target(name, cnt, pass, cnt ? pass " of " cnt " hold; " d : none)
}
function verdict(cnt, pass) { return cnt == 0 ? "not measured" : pass == cnt ? "**holds**" : "**does not hold**" }
function jverdict(cnt, pass) { return cnt == 0 ? "null" : pass == cnt ? "true" : "false" }
function add_target(name, cnt, pass, detail) {
    nt++
    tname[nt] = name; tverdict[nt] = verdict(cnt, pass); tjson[nt] = jverdict(cnt, pass)
    tdetail[nt] = detail
}

/^#/ {
    line = substr($0, 3)
    nc++
    if (nc == 1) header = line
    if (line ~ /^args /) args = substr(line, 6)
    if (line ~ /^uptime at the start: /) up_start = substr(line, 22)
    if (line ~ /^uptime at the end: /) up_end = substr(line, 20)
    if (line ~ /^load /) loads = loads (loads == "" ? "" : "; ") substr(line, 6)
    if (line ~ / took [0-9]+ s$/) took = took (took == "" ? "" : ", ") line
    if (line ~ / failed \(exit/) failed = failed (failed == "" ? "" : ", ") line
    if (line ~ /^total [0-9]+ s$/) total = substr(line, 7)
    if (line ~ /^torch /) { torchline[++ntorch] = substr(line, 7); sub(/;$/, "", torchline[ntorch]) }
    next
}
NF == 0 || $1 !~ /^[A-Za-z_][A-Za-z0-9_]*$/ { next }
{
    n++
    fam[n] = $1
    if (!($1 in famseen)) { famseen[$1] = 1; famorder[++nfam] = $1 }
    for (j = 2; j <= NF; j++) {
        eq = index($j, "=")
        if (eq < 2) continue
        k = substr($j, 1, eq - 1)
        val[n, k] = substr($j, eq + 1)
        if (!(($1, k) in keyseen)) { keyseen[$1, k] = 1; nkeys[$1]++; keys[$1, nkeys[$1]] = k }
        if (k ~ /ratio|speedup/) hasratio[$1] = 1
    }
}

END {
    # ---- targets of issue #7 ----
    # 1. GEMM >= 0.95x OpenBLAS (1 thread) on squares >= 512 and the flow shapes
    cnt = pass = 0; low = ""; lowcase = ""
    for (i = 1; i <= n; i++) {
        if (fam[i] != "gemm" || get(i, "threads") != "1" || !has(i, "ratio")) continue
        m = get(i, "m") + 0; nn = get(i, "n") + 0; kk = get(i, "k") + 0
        square = m == nn && nn == kk && m >= 512
        flow = m == 4096 && ((nn == 712 && kk == 356) || (nn == 200 && kk == 712))
        if (!square && !flow) continue
        cnt++; r = get(i, "ratio") + 0
        if (r >= 0.95) pass++
        if (low == "" || r < low) { low = r; lowcase = m "x" nn "x" kk " " get(i, "trans") }
    }
    d = cnt ? pass " of " cnt " cases >= 0.95; lowest " fmt2(low) " (" lowcase ")" : "no 1-thread gemm lines"
    add_target("GEMM >= 0.95x OpenBLAS, 1 thread, squares >= 512 and flow shapes", cnt, pass, d)

    # 2.-6. speed: our best thread count against the best setting of PyTorch
    best_vs_best("flow_step", "n d dc k", "seconds", "threads", "torch_best_seconds", "torch_best_threads", "torch_best_blas_threads")
    add_speed_target("HGAD training step >= 1.5x faster than PyTorch, best vs best", 1.5, "s", "no flow_step lines with torch")
    best_vs_best("epoch", "backbone size images sub_epochs", "seconds", "threads", "torch_seconds", "torch_threads", "torch_blas_threads")
    add_speed_target("HGAD training epoch >= 1.0x PyTorch, best vs best", 1.0, "s", "no epoch lines with torch")
    best_vs_best("backbone", "name size", "ms", "threads", "torch_ms", "torch_threads", "torch_blas_threads")
    add_speed_target("backbone feature extraction >= 1.0x PyTorch, best vs best, each backbone and size", 1.0, "ms", "no backbone lines with torch")
    best_vs_best("conv", "kind c hw stride", "ms", "threads", "torch_ms", "torch_threads", "torch_blas_threads")
    add_speed_target("convolution layers >= 1.0x PyTorch, best vs best, each case", 1.0, "ms", "no conv lines with torch")
    best_vs_best("score", "backbone size msk", "ms", "threads", "torch_ms", "torch_threads", "torch_blas_threads")
    add_speed_target("scoring one image >= 1.0x PyTorch, best vs best, each size", 1.0, "ms", "no score lines with torch")

    # 4. peak memory of training and of scoring <= PyTorch for the same work
    split("training scoring", kinds, " ")
    for (t = 1; t <= 2; t++) {
        cnt = pass = strict = 0; d = ""
        for (i = 1; i <= n; i++) {
            if (t == 1 && !(fam[i] == "epoch" || (fam[i] == "scaling" && get(i, "series") == "n" && get(i, "n") == "4096" && get(i, "d") == "200" && get(i, "k") == "12"))) continue
            if (t == 2 && fam[i] != "score") continue
            if (!has(i, "peak_mb") || !has(i, "torch_peak_mb")) continue
            cnt++
            p = get(i, "peak_mb") + 0; tp = get(i, "torch_peak_mb") + 0
            tw = has(i, "torch_base_mb") ? tp - get(i, "torch_base_mb") : tp
            if (p <= tp) pass++
            if (p <= tw) strict++
            what = fam[i] == "epoch" ? "epoch " get(i, "threads") " thread(s)" : fam[i] == "score" ? "score " get(i, "size") " px " get(i, "threads") " thread(s)" : "step N=4096"
            d = d (d == "" ? "" : "; ") what ": " p " vs " tp " MB (torch work " tw ")"
        }
        if (cnt) d = d ". Against PyTorch work memory (peak - import) alone: " strict " of " cnt " hold"
        add_target("peak memory of " kinds[t] " <= PyTorch", cnt, pass, d == "" ? "no " kinds[t] " lines with torch" : d)
    }

    # ---- RESULTS.md ----
    print "# Benchmarks: ours vs PyTorch 1.13 and OpenBLAS" > md
    print "" > md
    print "Run: " header ". Arguments: " (args == "" ? "none" : args) "." > md
    print "" > md
    if (up_start != "") print "- uptime at the start: `" up_start "`" > md
    if (up_end != "") print "- uptime at the end: `" up_end "`" > md
    if (loads != "") print "- load average (1, 5, 15 min): " loads > md
    if (total != "") print "- total time: " total "; " took > md
    if (failed != "") print "- **failed**: " failed > md
    print "" > md
    print "**The machine is shared with other jobs** (2 cores; other builds, tests and benchmarks ran during this run, so a load average above 2 means every benchmark got only part of the CPU). Absolute times are therefore noisy and 2-thread figures suffer most; each ratio compares ours and the reference measured in the same run, back to back or interleaved, so both saw similar load." > md
    print "" > md
    print "Written by `bench/make_results.sh` from `bench/results.txt` (`make bench`; a shorter run: `make bench BENCH_ARGS=--quick`). Ratios are reference time over ours (or our GFLOP/s over OpenBLAS): above 1 means ours is faster. Peak memory is the peak RSS (getrusage ru_maxrss) of a fresh process per case." > md
    print "" > md
    print "**How PyTorch was pinned.** Debian'"'"'s PyTorch 1.13 runs matmuls through OpenBLAS (its own thread pool) and most convolutions through oneDNN on its OpenMP pool, and with both pools at 2 threads it oversubscribes the 2 cores. Each PyTorch figure is therefore measured in the settings " PINNING " and is the fastest of them; the columns torch_threads and torch_blas_threads (flow_step: also torch_best_threads, torch_best_blas_threads) name the setting that gave it. Ours runs at 1 and 2 OpenMP threads; the speed targets below compare our best thread count with PyTorch'"'"'s best setting and name both. Every setting'"'"'s time is listed in [PyTorch thread settings](#pytorch-thread-settings) at the end." > md
    print "" > md
    print "## Targets of issue #7 in this run" > md
    print "" > md
    print "| target | in this run | measured |" > md
    print "|---|---|---|" > md
    for (t = 1; t <= nt; t++) print "| " tname[t] " | " tverdict[t] " | " tdetail[t] " |" > md
    for (f = 1; f <= nfam; f++) {
        F = famorder[f]
        print "" > md
        print "## " F > md
        print "" > md
        note = family_note(F)
        if (note != "") { print note > md; print "" > md }
        speed = ""
        if (!hasratio[F] && ((F, "ms") in keyseen) && ((F, "torch_ms") in keyseen)) speed = "ms"
        if (!hasratio[F] && ((F, "seconds") in keyseen) && ((F, "torch_seconds") in keyseen)) speed = "seconds"
        work = ((F, "torch_peak_mb") in keyseen) && ((F, "torch_base_mb") in keyseen)
        row = "|"; sep = "|"
        for (j = 1; j <= nkeys[F]; j++) { row = row " " keys[F, j] " |"; sep = sep "---|" }
        if (speed != "") { row = row " torch/ours |"; sep = sep "---|" }
        if (work) { row = row " torch work MB |"; sep = sep "---|" }
        print row > md
        print sep > md
        for (i = 1; i <= n; i++) {
            if (fam[i] != F) continue
            row = "|"
            for (j = 1; j <= nkeys[F]; j++) row = row " " get(i, keys[F, j]) " |"
            if (speed != "")
                row = row " " (has(i, speed) && has(i, "torch_" speed) && get(i, speed) + 0 > 0 ? fmt2(get(i, "torch_" speed) / get(i, speed)) : "NA") " |"
            if (work)
                row = row " " (has(i, "torch_peak_mb") && has(i, "torch_base_mb") ? get(i, "torch_peak_mb") - get(i, "torch_base_mb") : "NA") " |"
            print row > md
        }
    }

    print "" > md
    print "## PyTorch thread settings" > md
    print "" > md
    print "Each PyTorch measurement in every setting, as torch threads/OpenBLAS threads followed by its time (seconds or ms as the family reports them); a setting stopped once it could no longer be the fastest (1.2x the fastest whole process + 5 s) shows as stopped; a pilot (a short run in each setting) is followed by the measurement in its fastest setting." > md
    print "" > md
    if (ntorch == 0) print "No PyTorch measurements in this run." > md
    for (t = 1; t <= ntorch; t++) print "- " torchline[t] > md

    # ---- results.json ----
    print "{" > json
    print "  \"run\": " jstr(header) "," > json
    print "  \"args\": " jstr(args) "," > json
    print "  \"uptime_start\": " jstr(up_start) "," > json
    print "  \"uptime_end\": " jstr(up_end) "," > json
    print "  \"loads\": " jstr(loads) "," > json
    print "  \"durations\": " jstr(took) "," > json
    print "  \"failed\": " jstr(failed) "," > json
    print "  \"shared_machine\": true," > json
    print "  \"torch_pinning\": " jstr("torch_threads = torch.set_num_threads = OMP_NUM_THREADS = MKL_NUM_THREADS, torch_blas_threads = OPENBLAS_NUM_THREADS; settings " PINNING "; torch figures are the fastest setting") "," > json
    print "  \"torch_settings\": [" > json
    for (t = 1; t <= ntorch; t++) print "    " jstr(torchline[t]) (t < ntorch ? "," : "") > json
    print "  ]," > json
    print "  \"targets\": [" > json
    for (t = 1; t <= nt; t++)
        print "    {\"target\": " jstr(tname[t]) ", \"holds\": " tjson[t] ", \"measured\": " jstr(tdetail[t]) "}" (t < nt ? "," : "") > json
    print "  ]," > json
    print "  \"cases\": [" > json
    for (i = 1; i <= n; i++) {
        row = "    {\"bench\": " jstr(fam[i])
        for (j = 1; j <= nkeys[fam[i]]; j++) {
            k = keys[fam[i], j]
            if ((i, k) in val) row = row ", " jstr(k) ": " jval(val[i, k])
        }
        print row "}" (i < n ? "," : "") > json
    }
    print "  ]" > json
    print "}" > json
}
'
awk -v md="$md.tmp" -v json="$json.tmp" "$prog" "$in" || exit 1
mv "$md.tmp" "$md" && mv "$json.tmp" "$json" || exit 1
echo "wrote $md and $json"
