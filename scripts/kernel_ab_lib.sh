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

# kernel_ab_build REV FILE SED HARNESS OUT KERNEL.c ...: the harness, kernel file FILE at revision
# REV (its symbols renamed by the sed script, so both versions link side by side) and the working
# tree's kernels (FILE, KERNEL.c under Sources/CJEMKernels).
kernel_ab_build() {
    local rev=$1 file=$2 sedscript=$3 harness=$4 out=$5 k=Sources/CJEMKernels src=(); shift 5
    git show "$rev:$k/$file" | sed -e "$sedscript" > "$out.old.c"
    for f in "$@"; do src+=("$k/$f"); done
    kernel_build "$out" "$harness" "$out.old.c" "${src[@]}"
}
