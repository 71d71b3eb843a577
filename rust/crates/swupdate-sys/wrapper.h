/* The client side of SWUpdate's IPC: install control and progress. */
#include <network_ipc.h>
#include <progress_ipc.h>
