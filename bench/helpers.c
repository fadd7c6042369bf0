/* Children for bench.py, the same for every init measured.
 *   helpers sigecho     - on SIGUSR1 write one byte to fd 3; otherwise sleep.
 *   helpers storm N     - make N orphans (via an intermediate that exits)
 *                         blocked on a pipe; write "r" to fd 3 when ready;
 *                         on a byte from stdin, release them all at once
 *                         (they exit together), then sleep forever.
 *   helpers started     - write one byte to fd 3, then sleep forever.
 *   helpers rtcount SIG - block real-time signal SIG, write "r" to fd 3, count
 *                         each queued SIG (sigtimedwait); after 1 s without
 *                         one, write the count as text to fd 3 and go on.
 * "fd 3" is the fd number in $HELPER_FD when set (inherited through the init).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int out_fd = 3;
static void on_usr1(int sig) { (void)sig; char b = 'u'; (void)!write(out_fd, &b, 1); }

int main(int argc, char **argv) {
    if (getenv("HELPER_FD")) out_fd = atoi(getenv("HELPER_FD"));
    if (argc >= 2 && strcmp(argv[1], "sigecho") == 0) {
        struct sigaction sa; memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_usr1; sa.sa_flags = SA_RESTART;
        sigaction(SIGUSR1, &sa, 0);
        char b = 'r'; (void)!write(out_fd, &b, 1);
        for (;;) pause();
    }
    if (argc >= 3 && strcmp(argv[1], "storm") == 0) {
        int n = atoi(argv[2]), p[2];
        if (pipe(p) != 0) return 1;
        pid_t mid = fork();
        if (mid == 0) {
            for (int i = 0; i < n; i++) {
                if (fork() == 0) { char c; close(p[1]); (void)!read(p[0], &c, 1); _exit(0); }
            }
            _exit(0); /* the n children become orphans of the init */
        }
        close(p[0]);
        waitpid(mid, 0, 0);
        char b = 'r'; (void)!write(out_fd, &b, 1);
        char go; (void)!read(0, &go, 1);
        close(p[1]); /* EOF for all n at once */
        for (;;) pause();
    }
    if (argc >= 2 && strcmp(argv[1], "started") == 0) {
        char b = 's'; (void)!write(out_fd, &b, 1);
        for (;;) pause();
    }
    if (argc >= 3 && strcmp(argv[1], "rtcount") == 0) {
        int sig = atoi(argv[2]), count = 0;
        sigset_t set; sigemptyset(&set); sigaddset(&set, sig);
        sigprocmask(SIG_BLOCK, &set, 0);
        char b = 'r'; (void)!write(out_fd, &b, 1);
        struct timespec second = {1, 0};
        for (;;) {
            if (sigtimedwait(&set, 0, &second) == sig) { count++; continue; }
            if (count) {
                char text[32]; int n = snprintf(text, sizeof text, "%d\n", count);
                (void)!write(out_fd, text, n); count = 0;
            }
        }
    }
    return 2;
}
