/*
 * workspace.c - working memory a caller owns and keeps across calls
 * (docs/SPEC.md §9.8), so that a batch does not allocate, fault in and free
 * its buffers anew: the preset's 937 batches an epoch each paid hundreds of
 * page faults for it.  It uses nothing else of the core.
 *
 * A workspace is a handful of numbered blocks.  A kernel asks for block k of
 * at least so many bytes; the block grows when it is too small and is
 * otherwise handed back as the last call left it.  The caller decides whose
 * a workspace is (a model, a training run, a calling thread); there is no
 * static buffer anywhere, so calls on different workspaces never share
 * memory.  One workspace serves one call at a time: l5_workspace_enter
 * refuses a second call while the first runs.
 */
#include <stdlib.h>
#include <string.h>
#include "core.h"

L5Workspace *l5_workspace_new(void) {
    return calloc(1, sizeof(L5Workspace));
}

void l5_workspace_release(L5Workspace *ws) {
    for (int k = 0; k < L5_WS_BLOCKS; k++) {
        free(ws->block[k]);
        ws->block[k] = NULL;
        ws->bytes[k] = 0;
    }
}

void l5_workspace_free(L5Workspace *ws) {
    if (!ws) return;
    l5_workspace_release(ws);
    free(ws);
}

int l5_workspace_enter(L5Workspace *ws) {
    return __atomic_exchange_n(&ws->busy, 1, __ATOMIC_ACQUIRE) == 0;
}

void l5_workspace_leave(L5Workspace *ws) {
    __atomic_store_n(&ws->busy, 0, __ATOMIC_RELEASE);
}

/*
 * Block `which` of at least `bytes` bytes, 64-byte aligned, or NULL if memory
 * ran out.  It is all zeros when it is new or when `tag` differs from the tag
 * of the call before (a tile's zero frame is laid out per lane count: another
 * variant's tiles must start from zeros); else it holds what the last user
 * left.
 */
void *l5_workspace_block(L5Workspace *ws, int which, size_t bytes, int tag) {
    size_t size = (bytes + 63) / 64 * 64; /* aligned_alloc wants a multiple of the alignment */
    if (size == 0) size = 64;
    if (ws->bytes[which] < size) {
        free(ws->block[which]);
        ws->block[which] = aligned_alloc(64, size);
        ws->bytes[which] = ws->block[which] ? size : 0;
        if (!ws->block[which]) return NULL;
        memset(ws->block[which], 0, size);
        ws->tag[which] = tag;
    } else if (ws->tag[which] != tag) {
        memset(ws->block[which], 0, ws->bytes[which]);
        ws->tag[which] = tag;
    }
    return ws->block[which];
}
