/* leak_check.h - a Criterion suite whose every test fails on a leak under ASan.
 *
 *   LEAK_CHECKED_SUITE(image);
 *
 * Criterion runs each test in a child process whose leak report does not fail
 * the test; under ASan the suite checks for leaks at the end of every test
 * instead (and crashes, since an assertion in .fini would not fail it). Without
 * ASan the check does nothing.
 */
#ifndef FV_TEST_LEAK_CHECK_H
#define FV_TEST_LEAK_CHECK_H

#include <criterion/criterion.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#define TEST_LEAK_CHECK 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_LEAK_CHECK 1
#endif
#endif

#ifdef TEST_LEAK_CHECK
#include <sanitizer/lsan_interface.h>
#endif

/* Fails (crashes) the test on a leak under ASan; nothing without. For a
 * suite's own .fini. */
static inline void leak_check_fini(void)
{
#ifdef TEST_LEAK_CHECK
    if (__lsan_do_recoverable_leak_check() != 0)
        abort();
#endif
}

#define LEAK_CHECKED_SUITE(name) TestSuite(name, .fini = leak_check_fini)

#endif
