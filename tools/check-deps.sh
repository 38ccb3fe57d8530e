#!/bin/sh
# Checks that the headers and libraries needed to build (and, with "bench", to
# benchmark) are installed, and names the exact Debian package for each missing one.
# Usage: tools/check-deps.sh build|bench|parity
what=${1:-build}
cc=${CC:-cc}
missing=""

have_header() { # "header ...", extra flags
    for h in $1; do printf '#include <%s>\n' "$h"; done | $cc $2 -x c - -fsyntax-only 2>/dev/null
}
have_lib() { # library flag
    printf 'int main(void){return 0;}\n' | $cc -x c - -o /dev/null $1 2>/dev/null
}
need_header() { have_header "$1" "$3" || missing="$missing $2"; }
need_lib() { have_lib "$1" || missing="$missing $2"; }

command -v $cc >/dev/null 2>&1 || missing="$missing gcc"
command -v make >/dev/null 2>&1 || missing="$missing make"
case "$what" in
build)
    need_header omp.h libgomp1 -fopenmp
    need_header png.h libpng-dev
    need_header "stddef.h stdio.h jpeglib.h" libjpeg62-turbo-dev
    need_header "stdarg.h stddef.h stdint.h setjmp.h cmocka.h" libcmocka-dev
    ;;
bench)
    need_header cblas.h libopenblas-dev
    need_lib -lopenblas libopenblas-dev
    ${PYTHON:-/usr/bin/python3} -c 'import torch' 2>/dev/null || missing="$missing python3-torch"
    ;;
parity)
    ${PYTHON:-/usr/bin/python3} -c 'import torch' 2>/dev/null || missing="$missing python3-torch"
    ${PYTHON:-/usr/bin/python3} -c 'import torchvision' 2>/dev/null || missing="$missing python3-torchvision"
    ;;
esac
if [ -n "$missing" ]; then
    echo "missing packages:$missing" >&2
    echo "install them with: sudo apt-get install$missing" >&2
    exit 1
fi
exit 0
