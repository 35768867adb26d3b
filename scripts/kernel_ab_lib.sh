# Sourced by the kernel A/B scripts (winograd_ab.sh, conv_s2_ab.sh, gemm_isa_ab.sh).
# kernel_build OUT SOURCE.c ...: one program from a harness and kernel files, with the package's
# kernel flags. Exports LD_LIBRARY_PATH for libomp and OPENBLAS_NUM_THREADS=1 (OpenMP threads only,
# as in the package).
kernel_build() {
    local out=$1 k=Sources/CJEMKernels omph ompl; shift
    omph=$(dirname "$(dpkg -L libomp-14-dev | grep '/omp.h$' | head -1)")
    ompl=$(dirname "$(dpkg -L libomp-14-dev | grep '/libomp.so$' | head -1)")
    clang -O3 -march=x86-64-v3 -ffp-contract=fast -fopenmp -idirafter "$omph" -I"$k/include" -I"$k" \
      "$@" -L"$ompl" -lomp -lopenblas -lm -o "$out"
    export LD_LIBRARY_PATH=$ompl OPENBLAS_NUM_THREADS=1
}

# kernel_ab_build REV FILES SED HARNESS OUT KERNEL.c ...: the harness, the kernel files FILES (one, or
# several separated by spaces, concatenated in that order; a file REV does not have is left out) at
# revision REV (their symbols renamed by the sed script, so both versions link side by side) and the
# working tree's kernels (KERNEL.c under Sources/CJEMKernels). The old files' private headers
# (#include "x.h" of a file beside them) are inlined at REV too, not taken from the working tree.
kernel_ab_build() {
    local rev=$1 files=$2 sedscript=$3 harness=$4 out=$5 k=Sources/CJEMKernels src=() f line; shift 5
    for f in $files; do git show "$rev:$k/$f" 2>/dev/null || true; done | while IFS= read -r line; do
        if [[ $line =~ ^#include\ \"([A-Za-z0-9_]+\.h)\" ]] && git cat-file -e "$rev:$k/${BASH_REMATCH[1]}" 2>/dev/null; then
            git show "$rev:$k/${BASH_REMATCH[1]}"
        else
            printf '%s\n' "$line"
        fi
    done | sed -e "$sedscript" > "$out.old.c"
    [ -s "$out.old.c" ] || { echo "kernel_ab_build: none of '$files' exists at $rev" >&2; return 1; }
    for f in "$@"; do src+=("$k/$f"); done
    kernel_build "$out" "$harness" "$out.old.c" "${src[@]}"
}
