#include "shim.h"
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_pause.h>

uint16_t rvs_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts, uint16_t nb_pkts)
{ return rte_eth_rx_burst(port_id, queue_id, rx_pkts, nb_pkts); }
uint16_t rvs_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts, uint16_t nb_pkts)
{ return rte_eth_tx_burst(port_id, queue_id, tx_pkts, nb_pkts); }
struct rte_mbuf *rvs_rte_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }
int rvs_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count)
{ return rte_pktmbuf_alloc_bulk(mp, mbufs, count); }
void rvs_rte_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }
unsigned rvs_rte_lcore_id(void) { return rte_lcore_id(); }
int rvs_rte_errno(void) { return rte_errno; }
uint64_t rvs_rte_get_tsc_cycles(void) { return rte_get_tsc_cycles(); }
void rvs_rte_pause(void) { rte_pause(); }
unsigned rvs_rte_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table, unsigned n)
{ return rte_ring_enqueue_burst(r, obj_table, n, NULL); }
unsigned rvs_rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table, unsigned n)
{ return rte_ring_dequeue_burst(r, obj_table, n, NULL); }
int rvs_timestamp_dynfield_register(int *offset, uint64_t *flag)
{ return rte_mbuf_dyn_rx_timestamp_register(offset, flag); }
