/* list.h - intrusive circular doubly linked list. A list_t is a sentinel node; entries embed a
 * list_node_t and are recovered with container_of. An unlinked node points to itself, so
 * list_unlink() is safe to call twice. */
#ifndef HERALD_LIST_H
#define HERALD_LIST_H

#include <stdbool.h>
#include <stddef.h>

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

typedef struct list_node {
    struct list_node *prev, *next;
} list_node_t;

typedef list_node_t list_t;

static inline void list_init(list_t *l) { l->prev = l->next = l; }
static inline bool list_empty(const list_t *l) { return l->next == l; }
static inline bool list_linked(const list_node_t *n) { return n->next != n && n->next != NULL; }

static inline void list_push_back(list_t *l, list_node_t *n)
{
    n->prev = l->prev;
    n->next = l;
    l->prev->next = n;
    l->prev = n;
}

static inline void list_unlink(list_node_t *n)
{
    if (!n->next) return;
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/* Iterates allowing the current node to be unlinked (only the current one). */
#define list_each_safe(pos, tmp, l) for (pos = (l)->next, tmp = pos->next; pos != (l); pos = tmp, tmp = pos->next)

#endif
