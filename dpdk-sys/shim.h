/* C shims for DPDK's static inline functions and macros, which bindgen cannot
 * bind. Each is a one-line forwarder named rvs_<original>. Called per burst,
 * never per packet, on the hot path. */
#ifndef RVS_DPDK_SHIM_H
#define RVS_DPDK_SHIM_H
#include <stdint.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

uint16_t rvs_rte_eth_rx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t rvs_rte_eth_tx_burst(uint16_t port_id, uint16_t queue_id, struct rte_mbuf **tx_pkts, uint16_t nb_pkts);
struct rte_mbuf *rvs_rte_pktmbuf_alloc(struct rte_mempool *mp);
int rvs_rte_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count);
void rvs_rte_pktmbuf_free(struct rte_mbuf *m);
unsigned rvs_rte_lcore_id(void);
int rvs_rte_errno(void);
uint64_t rvs_rte_get_tsc_cycles(void);
void rvs_rte_pause(void);
unsigned rvs_rte_ring_enqueue_burst(struct rte_ring *r, void *const *obj_table, unsigned n);
unsigned rvs_rte_ring_dequeue_burst(struct rte_ring *r, void **obj_table, unsigned n);
/* The offset of the Rx timestamp dynamic field and its flag (registered on demand). */
int rvs_timestamp_dynfield_register(int *offset, uint64_t *flag);
#endif
