#include "core/signal.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    if (g_stop) {
        signal(sig, SIG_DFL);
        raise(sig);
        return;
    }
    g_stop = 1;
    static const char msg[] = "\ndeploybench: stopping after the current step (again to quit now)\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
}

void dpb_signal_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool dpb_interrupted(void) { return g_stop != 0; }
