#!/usr/bin/python3
"""Counts the multicast RTP packets this host receives, for examples/lab.sh.

usage: mcast-count.py RANGE PORT FILE
Joins the first 4 groups of RANGE (e.g. 239.255.42.0/24) on PORT, and
rewrites FILE with the count ("packets N") every second.
"""
import ipaddress
import socket
import struct
import sys
import time

net, port, out = ipaddress.ip_network(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
s.bind(("", port))
for i, group in enumerate(net):
    if i >= 4:
        break
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                 struct.pack("4s4s", socket.inet_aton(str(group)), socket.inet_aton("0.0.0.0")))
s.settimeout(1)
n, last = 0, 0.0
while True:
    try:
        s.recv(2048)
        n += 1
    except socket.timeout:
        pass
    if time.time() - last >= 1:
        with open(out, "w") as f:
            f.write("packets %d\n" % n)
        last = time.time()
