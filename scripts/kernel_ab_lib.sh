# Sourced by the kernel A/B scripts (winograd_ab.sh, conv_s2_ab.sh): builds one program from a
# harness, a kernel file at revision REV (its symbols renamed by a sed script, so both versions link
# side by side) and the working tree's kernels, with the package's kernel flags.
# kernel_ab_build REV FILE SED HARNESS OUT KERNEL.c ...   (FILE, KERNEL.c under Sources/CJEMKernels)
# Exports LD_LIBRARY_PATH for libomp and OPENBLAS_NUM_THREADS=1 (OpenMP threads only, as in the package).
kernel_ab_build() {
    local rev=$1 file=$2 sedscript=$3 harness=$4 out=$5; shift 5
    local k=Sources/CJEMKernels omph ompl src=()
    omph=$(dirname "$(dpkg -L libomp-14-dev | grep '/omp.h$' | head -1)")
    ompl=$(dirname "$(dpkg -L libomp-14-dev | grep '/libomp.so$' | head -1)")
    git show "$rev:$k/$file" | sed -e "$sedscript" > "$out.old.c"
    for f in "$@"; do src+=("$k/$f"); done
    clang -O3 -march=x86-64-v3 -ffp-contract=fast -fopenmp -idirafter "$omph" -I"$k/include" -I"$k" \
      "$harness" "$out.old.c" "${src[@]}" -L"$ompl" -lomp -lopenblas -lm -o "$out"
    export LD_LIBRARY_PATH=$ompl OPENBLAS_NUM_THREADS=1
}
