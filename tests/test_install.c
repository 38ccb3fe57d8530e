/* make install into a temporary DESTDIR, then a program outside the tree
 * (tests/install_check/main.c) is built with the installed pkg-config file,
 * against the static and the shared library, and run. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tests/testutil.h"

static int run(const char *cmd) {
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_install_and_build_outside(void **state) {
    const char *build = getenv("HG_BUILD_DIR");
    if (!build || !*build) build = "build";
    /* sanitizer builds need their runtime in every link: the packaging is
     * checked by the normal build */
    if (getenv("HG_SANITIZE") || system("command -v pkg-config >/dev/null 2>&1") != 0) skip();
    char dir[256], cmd[4096];
    snprintf(dir, sizeof dir, "/tmp/hgad_install_%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "make -s BUILD=%s DESTDIR=%s PREFIX=/opt/hgad install >%s.log 2>&1", build, dir, dir);
    if (run(cmd) != 0) fail_msg("make install failed (see %s.log)", dir);
    const char *files[] = {"lib/libhgad.a", "lib/libhgad.so", "lib/pkgconfig/hgad.pc", "bin/hgad",
                           "include/hgad/tensor/tensor.h", "include/hgad/models/hgad.h"};
    for (int i = 0; i < 6; i++) {
        snprintf(cmd, sizeof cmd, "%s/opt/hgad/%s", dir, files[i]);
        if (access(cmd, F_OK) != 0) fail_msg("not installed: %s", cmd);
    }
    /* pkg-config's prefix is /opt/hgad; redirect it to the staging directory */
    const char *flags = "PKG_CONFIG_PATH=%s/opt/hgad/lib/pkgconfig pkg-config --define-prefix";
    char pc[512];
    snprintf(pc, sizeof pc, flags, dir);
    snprintf(cmd, sizeof cmd,
             "cp %s/tests/install_check/main.c %s/main.c && "
             "cc -std=c11 -o %s/prog_static %s/main.c $(%s --cflags hgad) %s/opt/hgad/lib/libhgad.a "
             "$(%s --libs --static hgad | sed 's/-lhgad//') && %s/prog_static | grep -qx ok",
             getenv("PWD") ? getenv("PWD") : ".", dir, dir, dir, pc, dir, pc, dir);
    if (run(cmd) != 0) fail_msg("static build or run failed: %s", cmd);
    snprintf(cmd, sizeof cmd,
             "cc -std=c11 -o %s/prog_shared %s/main.c $(%s --cflags --libs hgad) -lm && "
             "LD_LIBRARY_PATH=%s/opt/hgad/lib %s/prog_shared | grep -qx ok",
             dir, dir, pc, dir, dir);
    if (run(cmd) != 0) fail_msg("shared build or run failed: %s", cmd);
    snprintf(cmd, sizeof cmd, "rm -rf %s %s.log", dir, dir);
    run(cmd);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_install_and_build_outside)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
