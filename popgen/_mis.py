"""Maximum independent sets by iterated local search (Andrade, Resende & Werneck 2012).

Used by :func:`popgen.relatedness.king_cutoff` on the graph of related pairs
(CSR adjacency ``indptr``, ``indices``, sorted, symmetric, no self loops).
A solution is a bool mask ``inset``; ``tight[v]`` counts the solution
neighbours of ``v``.  A (1,2)-swap removes a solution vertex ``x`` and inserts
two non-adjacent vertices whose only solution neighbour is ``x``; the search
perturbs the solution by forcing a random vertex in, re-applies swaps, and
keeps the best solution seen.  numba, compiled once and cached on disk (this
module is imported only when needed, so ``import popgen.relatedness`` stays cheap).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def insert(v, inset, tight, indptr, indices):
    inset[v] = True
    for e in range(indptr[v], indptr[v + 1]):
        tight[indices[e]] += 1


@numba.njit(cache=True, nogil=True)
def remove(v, inset, tight, indptr, indices):
    inset[v] = False
    for e in range(indptr[v], indptr[v + 1]):
        tight[indices[e]] -= 1


@numba.njit(cache=True, nogil=True)
def fill_free(v, inset, tight, indptr, indices, stack, top):
    """Insert free neighbours of v (no solution neighbour); push them."""
    for e in range(indptr[v], indptr[v + 1]):
        u = indices[e]
        if not inset[u] and tight[u] == 0:
            insert(u, inset, tight, indptr, indices)
            stack[top] = u
            top += 1
    return top


@numba.njit(cache=True, nogil=True)
def push_owners(v, inset, tight, indptr, indices, stack, top):
    """Push the solution neighbour of each 1-tight neighbour of v (swap candidates)."""
    for e in range(indptr[v], indptr[v + 1]):
        u = indices[e]
        if not inset[u] and tight[u] == 1:
            for f in range(indptr[u], indptr[u + 1]):
                w = indices[f]
                if inset[w]:
                    stack[top] = w
                    top += 1
                    break
    return top


@numba.njit(cache=True, nogil=True)
def improve(inset, tight, indptr, indices, stack, top, mark, cand):
    """(1,2)-swaps until none applies to the stacked solution vertices."""
    stamp = mark.max() + 1
    while top > 0:
        if top > stack.shape[0] - 4 * indptr[-1] - 8:  # keep room: re-scan everything
            top = 0
            for v in range(inset.shape[0]):
                if inset[v]:
                    stack[top] = v
                    top += 1
        top -= 1
        x = stack[top]
        if not inset[x]:
            continue
        k = 0
        for e in range(indptr[x], indptr[x + 1]):
            u = indices[e]
            if not inset[u] and tight[u] == 1:
                cand[k] = u
                k += 1
        if k < 2:
            continue
        found_a = -1
        found_b = -1
        for a in range(k):
            u = cand[a]
            stamp += 1
            for e in range(indptr[u], indptr[u + 1]):
                mark[indices[e]] = stamp
            for b in range(a + 1, k):
                if mark[cand[b]] != stamp:
                    found_a, found_b = u, cand[b]
                    break
            if found_a >= 0:
                break
        if found_a < 0:
            continue
        remove(x, inset, tight, indptr, indices)
        insert(found_a, inset, tight, indptr, indices)
        insert(found_b, inset, tight, indptr, indices)
        stack[top] = found_a
        stack[top + 1] = found_b
        top += 2
        top = fill_free(x, inset, tight, indptr, indices, stack, top)
        top = push_owners(x, inset, tight, indptr, indices, stack, top)
    return top


@numba.njit(cache=True, nogil=True)
def local_search(indptr, indices, start, iterations, seed):
    """Best independent set found in ``iterations`` perturbations from ``start`` (bool mask)."""
    n = indptr.shape[0] - 1
    np.random.seed(seed)
    inset = np.zeros(n, dtype=np.bool_)
    tight = np.zeros(n, dtype=np.int64)
    for v in range(n):
        if start[v]:
            insert(v, inset, tight, indptr, indices)
    stack = np.empty(8 * (indptr[-1] + n) + 64, dtype=np.int64)
    mark = np.zeros(n, dtype=np.int64)
    cand = np.empty(n, dtype=np.int64)
    top = 0
    for v in range(n):
        if not inset[v] and tight[v] == 0:
            insert(v, inset, tight, indptr, indices)
    for v in range(n):
        if inset[v]:
            stack[top] = v
            top += 1
    improve(inset, tight, indptr, indices, stack, top, mark, cand)
    size = inset.sum()
    best = inset.copy()
    best_size = size
    saved = inset.copy()
    saved_tight = tight.copy()
    for _ in range(iterations):
        saved[:] = inset
        saved_tight[:] = tight
        before = size
        # perturb: force a random outside vertex in, its solution neighbours out
        v = np.random.randint(n)
        if inset[v]:
            continue
        top = 0
        for e in range(indptr[v], indptr[v + 1]):
            u = indices[e]
            if inset[u]:
                remove(u, inset, tight, indptr, indices)
        insert(v, inset, tight, indptr, indices)
        stack[top] = v
        top += 1
        for e in range(indptr[v], indptr[v + 1]):
            u = indices[e]
            top = fill_free(u, inset, tight, indptr, indices, stack, top)
            top = push_owners(u, inset, tight, indptr, indices, stack, top)
        improve(inset, tight, indptr, indices, stack, top, mark, cand)
        size = inset.sum()
        if size > best_size:
            best[:] = inset
            best_size = size
        # acceptance (ARW 2012): worse solutions survive with probability 1 / (1 + d d*)
        d = before - size
        if d > 0 and np.random.random() * (1 + d * (best_size - size)) > 1.0:
            inset[:] = saved
            tight[:] = saved_tight
            size = before
    return best

