/*
 * Network namespaces and a container's veth on an existing bridge, without a process per step.
 *
 * netnsCreate(file): a new network namespace bind-mounted on file (what `unshare --net=file true`
 * does, without forking the daemon and exec'ing two programs).
 *
 * vethJoin(netns, bridge, ifname, mac, ip, prefix, gateway, mtu, metric): the netlink requests
 * netavark 1.4's bridge driver makes to join a container to a bridge that already exists
 * (src/network/bridge.rs create_veth_pair, commands/setup.rs), in the same order and with the
 * same attributes: loopback up, net.ipv4.ip_forward=1, a veth pair created in the host with a
 * kernel-chosen host name, MTU and the bridge as master, its peer named ifname with the static MAC
 * in the container's namespace; autoconf off for ifname there; host end up; address (with
 * broadcast) on the peer; peer up; default route via the gateway (main table, static, metric).
 * netavark's firewall work is not done here: berth calls this only where those rules exist
 * already and nothing is published (src/network/service.ts).
 *
 * vethLeave(netns, ifname): deletes the container's end (the pair goes with it), as netavark's
 * teardown does before it looks whether the bridge is left empty.
 *
 * All three run on libuv's thread pool. A pool thread switches into the container's namespace
 * with setns(2) and always back before the work ends (the process aborts if it cannot: a pool
 * thread left in another namespace would be wrong for everything after).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <node_api.h>
#include "netns.h"
#include "errno_error.h"

/* ---- netlink ---------------------------------------------------------------------------- */

struct nl_req {
  struct nlmsghdr *h;
  char buf[1024];
};

static void nl_init(struct nl_req *r, uint16_t type, uint16_t flags, const void *body, size_t len) {
  memset(r->buf, 0, sizeof(r->buf));
  r->h = (struct nlmsghdr *)r->buf;
  r->h->nlmsg_len = NLMSG_LENGTH(len);
  r->h->nlmsg_type = type;
  r->h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
  memcpy(NLMSG_DATA(r->h), body, len);
}

static struct rtattr *nl_attr(struct nl_req *r, uint16_t type, const void *data, size_t len) {
  struct rtattr *a = (struct rtattr *)(r->buf + NLMSG_ALIGN(r->h->nlmsg_len));
  a->rta_type = type;
  a->rta_len = RTA_LENGTH(len);
  if (len) memcpy(RTA_DATA(a), data, len);
  r->h->nlmsg_len = NLMSG_ALIGN(r->h->nlmsg_len) + RTA_ALIGN(a->rta_len);
  return a;
}

static void nl_nest_end(struct nl_req *r, struct rtattr *nest) {
  nest->rta_len = (unsigned short)(r->buf + r->h->nlmsg_len - (char *)nest);
}

static int nl_open(void) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return -1;
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    int err = errno;
    close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

/*
 * Sends a request and reads the answer: 0 on the ACK, -1 with errno from the kernel's error.
 * For RTM_GETLINK (no NLM_F_ACK needed, but harmless) the link's message is copied to reply.
 */
static int nl_talk(int fd, struct nl_req *r, char *reply, size_t reply_len) {
  static __thread uint32_t seq;
  r->h->nlmsg_seq = ++seq;
  if (send(fd, r->h, r->h->nlmsg_len, 0) < 0) return -1;
  char buf[32768];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
      if (h->nlmsg_seq != r->h->nlmsg_seq) continue;
      if (h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = NLMSG_DATA(h);
        if (e->error == 0) return 0;
        errno = -e->error;
        return -1;
      }
      if (reply && h->nlmsg_len <= reply_len) memcpy(reply, h, h->nlmsg_len);
    }
  }
}

static int link_set_up(int fd, int index) {
  struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = index, .ifi_flags = IFF_UP, .ifi_change = IFF_UP};
  struct nl_req r;
  nl_init(&r, RTM_NEWLINK, 0, &ifi, sizeof(ifi));
  return nl_talk(fd, &r, NULL, 0);
}

/* The index, MAC and peer index (IFLA_LINK) of the link called name, through fd's namespace. */
static int link_get(int fd, const char *name, int *index, uint8_t mac[6], int *peer) {
  struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
  struct nl_req r;
  char reply[16384];
  nl_init(&r, RTM_GETLINK, 0, &ifi, sizeof(ifi));
  nl_attr(&r, IFLA_IFNAME, name, strlen(name) + 1);
  memset(reply, 0, sizeof(reply));
  if (nl_talk(fd, &r, reply, sizeof(reply)) < 0) return -1;
  struct nlmsghdr *h = (struct nlmsghdr *)reply;
  if (h->nlmsg_type != RTM_NEWLINK) {
    errno = ENODEV;
    return -1;
  }
  struct ifinfomsg *got = NLMSG_DATA(h);
  *index = got->ifi_index;
  *peer = 0;
  int have_mac = 0;
  int len = (int)IFLA_PAYLOAD(h);
  for (struct rtattr *a = IFLA_RTA(got); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    if (a->rta_type == IFLA_ADDRESS && RTA_PAYLOAD(a) == 6) {
      memcpy(mac, RTA_DATA(a), 6);
      have_mac = 1;
    } else if (a->rta_type == IFLA_LINK && RTA_PAYLOAD(a) >= 4) {
      *peer = *(int *)RTA_DATA(a);
    }
  }
  if (!have_mac || *peer == 0) {
    errno = EPROTO;
    return -1;
  }
  return 0;
}

/* Writes value to a sysctl file unless it holds it already (netavark's apply_sysctl_value). */
static int sysctl_set(const char *file, const char *value) {
  char cur[32];
  int fd = open(file, O_RDWR | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, cur, sizeof(cur) - 1);
  if (n >= 0) {
    cur[n] = 0;
    if (n > 0 && cur[n - 1] == '\n') cur[n - 1] = 0;
    if (strcmp(cur, value) == 0) {
      close(fd);
      return 0;
    }
  }
  ssize_t w = pwrite(fd, value, strlen(value), 0);
  int err = errno;
  close(fd);
  if (w < 0) {
    errno = err;
    return -1;
  }
  return 0;
}

/* ---- the work ----------------------------------------------------------------------------- */

enum net_op { OP_NETNS_CREATE, OP_VETH_JOIN, OP_VETH_LEAVE };

struct net_work {
  napi_async_work work;
  napi_deferred deferred;
  enum net_op op;
  char *netns;
  char *bridge;
  char *ifname;
  uint8_t mac[6];
  struct in_addr ip, gateway;
  uint32_t prefix, mtu, metric;
  /* results */
  int err;
  const char *step;
  char mac_out[18];
};

/* Fails the work with errno at step; returns -1 for the caller to return. */
static int fail(struct net_work *w, const char *step) {
  w->err = errno ? errno : EIO;
  w->step = step;
  return -1;
}

static void back_to(int host_ns) {
  if (setns(host_ns, CLONE_NEWNET) != 0) {
    fprintf(stderr, "berth_native: cannot return a pool thread to the daemon's network namespace: %s\n", strerror(errno));
    abort();
  }
}

static int do_netns_create(struct net_work *w, int host_ns) {
  if (unshare(CLONE_NEWNET) != 0) return fail(w, "unshare");
  int rc = mount("/proc/thread-self/ns/net", w->netns, NULL, MS_BIND, NULL);
  int err = errno;
  back_to(host_ns);
  if (rc != 0) {
    errno = err;
    return fail(w, "mount");
  }
  return 0;
}

/* The container side of a join, run inside the container's namespace. */
static int join_inside(struct net_work *w, int host_fd, int ns_fd) {
  int index, peer;
  uint8_t mac[6];
  if (link_get(ns_fd, w->ifname, &index, mac, &peer) < 0) return fail(w, "get container veth");
  snprintf(w->mac_out, sizeof(w->mac_out), "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  char file[128];
  snprintf(file, sizeof(file), "/proc/sys/net/ipv6/conf/%s/autoconf", w->ifname);
  /* As netavark: a kernel without IPv6, or a read-only /proc, is not an error. */
  if (sysctl_set(file, "0") < 0 && errno != ENOENT && errno != EROFS) return fail(w, "set autoconf sysctl");
  if (link_set_up(host_fd, peer) < 0) return fail(w, "set host veth up");

  struct ifaddrmsg ifa = {.ifa_family = AF_INET, .ifa_prefixlen = (uint8_t)w->prefix, .ifa_index = (uint32_t)index};
  struct nl_req r;
  nl_init(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof(ifa));
  uint32_t mask = w->prefix == 0 ? 0 : htonl(~((1u << (32 - w->prefix)) - 1));
  struct in_addr brd = {.s_addr = w->ip.s_addr | ~mask};
  nl_attr(&r, IFA_BROADCAST, &brd, 4);
  nl_attr(&r, IFA_LOCAL, &w->ip, 4);
  if (nl_talk(ns_fd, &r, NULL, 0) < 0) return fail(w, "add ip addr to container veth");
  if (link_set_up(ns_fd, index) < 0) return fail(w, "set container veth up");

  struct rtmsg rt = {.rtm_family = AF_INET, .rtm_dst_len = 0, .rtm_table = RT_TABLE_MAIN, .rtm_protocol = RTPROT_STATIC, .rtm_scope = RT_SCOPE_UNIVERSE, .rtm_type = RTN_UNICAST};
  nl_init(&r, RTM_NEWROUTE, NLM_F_CREATE, &rt, sizeof(rt));
  struct in_addr any = {.s_addr = 0};
  nl_attr(&r, RTA_DST, &any, 4);
  nl_attr(&r, RTA_GATEWAY, &w->gateway, 4);
  nl_attr(&r, RTA_PRIORITY, &w->metric, 4);
  if (nl_talk(ns_fd, &r, NULL, 0) < 0) return fail(w, "add default route");
  return 0;
}

static int do_veth_join(struct net_work *w, int host_ns) {
  int rc = -1, host_fd = -1, ns_fd = -1, target = -1;
  unsigned int bridge = if_nametoindex(w->bridge);
  char file[128];
  if (bridge == 0) return fail(w, "get bridge interface");
  snprintf(file, sizeof(file), "/sys/class/net/%s/bridge", w->bridge);
  if (access(file, F_OK) != 0) {
    errno = ENOTSUP;
    return fail(w, "get bridge interface (not a bridge)");
  }
  target = open(w->netns, O_RDONLY | O_CLOEXEC);
  if (target < 0) return fail(w, "open netns");
  host_fd = nl_open();
  if (host_fd < 0) {
    fail(w, "open netlink socket");
    goto out;
  }
  if (setns(target, CLONE_NEWNET) != 0) {
    fail(w, "setns");
    goto out;
  }
  ns_fd = nl_open();
  if (ns_fd < 0) {
    fail(w, "open netlink socket");
    back_to(host_ns);
    goto out;
  }
  /* netavark brings loopback up first (index 1 in a fresh namespace). */
  if (link_set_up(ns_fd, 1) < 0) {
    fail(w, "set loopback up");
    back_to(host_ns);
    goto out;
  }
  back_to(host_ns);
  if (sysctl_set("/proc/sys/net/ipv4/ip_forward", "1") < 0) {
    fail(w, "set net.ipv4.ip_forward");
    goto out;
  }

  /* The pair: host end (kernel-named) on the bridge, peer in the container's namespace. */
  struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
  struct nl_req r;
  nl_init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof(ifi));
  struct rtattr *info = nl_attr(&r, IFLA_LINKINFO, NULL, 0);
  nl_attr(&r, IFLA_INFO_KIND, "veth", 4);
  struct rtattr *data = nl_attr(&r, IFLA_INFO_DATA, NULL, 0);
  struct rtattr *peer = nl_attr(&r, VETH_INFO_PEER, NULL, 0);
  struct ifinfomsg peer_ifi = {.ifi_family = AF_UNSPEC};
  /* VETH_INFO_PEER carries an ifinfomsg, then the peer's own attributes. */
  memcpy(r.buf + r.h->nlmsg_len, &peer_ifi, sizeof(peer_ifi));
  r.h->nlmsg_len += NLMSG_ALIGN(sizeof(peer_ifi));
  nl_attr(&r, IFLA_IFNAME, w->ifname, strlen(w->ifname) + 1);
  if (w->mtu) nl_attr(&r, IFLA_MTU, &w->mtu, 4);
  nl_attr(&r, IFLA_ADDRESS, w->mac, 6);
  nl_attr(&r, IFLA_NET_NS_FD, &target, 4);
  nl_nest_end(&r, peer);
  nl_nest_end(&r, data);
  nl_nest_end(&r, info);
  if (w->mtu) nl_attr(&r, IFLA_MTU, &w->mtu, 4);
  nl_attr(&r, IFLA_MASTER, &bridge, 4);
  if (nl_talk(host_fd, &r, NULL, 0) < 0) {
    fail(w, errno == EEXIST ? "create veth pair: interface already exists on container namespace" : "create veth pair");
    goto out;
  }

  if (setns(target, CLONE_NEWNET) != 0) {
    fail(w, "setns");
    goto out;
  }
  rc = join_inside(w, host_fd, ns_fd);
  back_to(host_ns);
out:
  if (ns_fd >= 0) close(ns_fd);
  if (host_fd >= 0) close(host_fd);
  if (target >= 0) close(target);
  return rc;
}

static int do_veth_leave(struct net_work *w, int host_ns) {
  int target = open(w->netns, O_RDONLY | O_CLOEXEC);
  if (target < 0) return fail(w, "open netns");
  if (setns(target, CLONE_NEWNET) != 0) {
    close(target);
    return fail(w, "setns");
  }
  close(target);
  int rc = -1, fd = nl_open();
  if (fd < 0) {
    fail(w, "open netlink socket");
  } else {
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
    struct nl_req r;
    nl_init(&r, RTM_DELLINK, 0, &ifi, sizeof(ifi));
    nl_attr(&r, IFLA_IFNAME, w->ifname, strlen(w->ifname) + 1);
    rc = nl_talk(fd, &r, NULL, 0) < 0 ? fail(w, "failed to delete container veth") : 0;
    close(fd);
  }
  back_to(host_ns);
  return rc;
}

static void net_execute(napi_env env, void *data) {
  struct net_work *w = data;
  (void)env;
  errno = 0;
  int host_ns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  if (host_ns < 0) {
    fail(w, "open /proc/thread-self/ns/net");
    return;
  }
  switch (w->op) {
    case OP_NETNS_CREATE: do_netns_create(w, host_ns); break;
    case OP_VETH_JOIN: do_veth_join(w, host_ns); break;
    case OP_VETH_LEAVE: do_veth_leave(w, host_ns); break;
  }
  close(host_ns);
}

static void net_free(struct net_work *w) {
  free(w->netns);
  free(w->bridge);
  free(w->ifname);
  free(w);
}

static void net_complete(napi_env env, napi_status status, void *data) {
  struct net_work *w = data;
  napi_value result;
  if (status == napi_ok && w->err == 0) {
    if (w->op == OP_VETH_JOIN) napi_create_string_utf8(env, w->mac_out, NAPI_AUTO_LENGTH, &result);
    else napi_get_undefined(env, &result);
    napi_resolve_deferred(env, w->deferred, result);
  } else {
    napi_reject_deferred(env, w->deferred, errno_error(env, w->err ? w->err : ECANCELED, w->step ? w->step : "netlink"));
  }
  napi_delete_async_work(env, w->work);
  net_free(w);
}

static napi_value queue(napi_env env, struct net_work *w) {
  napi_value promise, name;
  if (napi_create_promise(env, &w->deferred, &promise) != napi_ok ||
      napi_create_string_utf8(env, "berth:netns", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, net_execute, net_complete, w, &w->work) != napi_ok ||
      napi_queue_async_work(env, w->work) != napi_ok) {
    net_free(w);
    napi_throw_error(env, NULL, "berth_native: cannot queue network namespace work");
    return NULL;
  }
  return promise;
}

static int arg_string(napi_env env, napi_value v, char **out) {
  size_t len = 0;
  *out = NULL;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a string");
    return -1;
  }
  *out = malloc(len + 1);
  if (!*out || napi_get_value_string_utf8(env, v, *out, len + 1, &len) != napi_ok) {
    napi_throw_error(env, NULL, "out of memory");
    return -1;
  }
  return 0;
}

static int arg_u32(napi_env env, napi_value v, uint32_t *out) {
  if (napi_get_value_uint32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "expected a number");
    return -1;
  }
  return 0;
}

static int arg_ipv4(napi_env env, napi_value v, struct in_addr *out) {
  char *s;
  if (arg_string(env, v, &s)) {
    free(s);
    return -1;
  }
  int ok = inet_pton(AF_INET, s, out) == 1;
  free(s);
  if (!ok) napi_throw_type_error(env, NULL, "expected an IPv4 address");
  return ok ? 0 : -1;
}

static struct net_work *new_work(napi_env env, enum net_op op) {
  struct net_work *w = calloc(1, sizeof(*w));
  if (!w) napi_throw_error(env, NULL, "out of memory");
  else w->op = op;
  return w;
}

/* netnsCreate(file) -> Promise<void> */
napi_value js_netns_create(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1) {
    napi_throw_type_error(env, NULL, "netnsCreate(file)");
    return NULL;
  }
  struct net_work *w = new_work(env, OP_NETNS_CREATE);
  if (!w) return NULL;
  if (arg_string(env, argv[0], &w->netns)) {
    net_free(w);
    return NULL;
  }
  return queue(env, w);
}

/* vethJoin(netns, bridge, ifname, mac "aa:bb:..", ip, prefix, gateway, mtu, metric) -> Promise<mac> */
napi_value js_veth_join(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 9) {
    napi_throw_type_error(env, NULL, "vethJoin(netns, bridge, ifname, mac, ip, prefix, gateway, mtu, metric)");
    return NULL;
  }
  struct net_work *w = new_work(env, OP_VETH_JOIN);
  char *mac = NULL;
  if (!w) return NULL;
  if (arg_string(env, argv[0], &w->netns) || arg_string(env, argv[1], &w->bridge) || arg_string(env, argv[2], &w->ifname) ||
      arg_string(env, argv[3], &mac) || arg_ipv4(env, argv[4], &w->ip) || arg_u32(env, argv[5], &w->prefix) ||
      arg_ipv4(env, argv[6], &w->gateway) || arg_u32(env, argv[7], &w->mtu) || arg_u32(env, argv[8], &w->metric)) {
    free(mac);
    net_free(w);
    return NULL;
  }
  unsigned int m[6];
  int ok = sscanf(mac, "%2x:%2x:%2x:%2x:%2x:%2x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6 && strlen(mac) == 17;
  free(mac);
  if (!ok || w->prefix > 32 || strlen(w->ifname) >= IFNAMSIZ || strlen(w->bridge) >= IFNAMSIZ) {
    net_free(w);
    napi_throw_type_error(env, NULL, "vethJoin: bad MAC address, prefix or interface name");
    return NULL;
  }
  for (int i = 0; i < 6; i++) w->mac[i] = (uint8_t)m[i];
  return queue(env, w);
}

/* vethLeave(netns, ifname) -> Promise<void> */
napi_value js_veth_leave(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    napi_throw_type_error(env, NULL, "vethLeave(netns, ifname)");
    return NULL;
  }
  struct net_work *w = new_work(env, OP_VETH_LEAVE);
  if (!w) return NULL;
  if (arg_string(env, argv[0], &w->netns) || arg_string(env, argv[1], &w->ifname)) {
    net_free(w);
    return NULL;
  }
  if (strlen(w->ifname) >= IFNAMSIZ) {
    net_free(w);
    napi_throw_type_error(env, NULL, "vethLeave: bad interface name");
    return NULL;
  }
  return queue(env, w);
}
