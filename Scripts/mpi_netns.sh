#!/bin/sh
# Two MPI "hosts" on this machine: network namespaces joined by a veth pair
# (10.77.0.1 <-> 10.77.0.2), one rank in each, so that the ranks talk over a
# real TCP link (Open MPI's ob1 over btl_tcp; shared memory and UCX are off).
# mpirun runs in the first namespace and starts the second
# host's Open MPI daemon through a launcher that enters the other namespace
# (where a cluster would use ssh). Needs root and iproute2.
#
#   Scripts/mpi_netns.sh PROGRAM ARGS...     e.g. .build/debug/bnkmpi check train
#
# Exits 77 (skipped) when namespaces cannot be made here; otherwise with the
# job's status, after printing the bytes the link carried.
set -u
A=bnk-mpi-a B=bnk-mpi-b
ip netns del $A 2>/dev/null; ip netns del $B 2>/dev/null   # left over from an interrupted run
work=$(mktemp -d)
cleanup() {
    ip netns del $A 2>/dev/null
    ip netns del $B 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

if ! { ip netns add $A && ip netns add $B &&
       ip link add bnk-veth-a type veth peer name bnk-veth-b &&
       ip link set bnk-veth-a netns $A && ip link set bnk-veth-b netns $B &&
       ip -n $A addr add 10.77.0.1/24 dev bnk-veth-a && ip -n $B addr add 10.77.0.2/24 dev bnk-veth-b &&
       ip -n $A link set bnk-veth-a up && ip -n $B link set bnk-veth-b up &&
       ip -n $A link set lo up && ip -n $B link set lo up; } 2>"$work/ip.err"; then
    echo "mpi_netns: skipped, cannot make network namespaces here: $(cat "$work/ip.err")" >&2
    exit 77
fi

# Open MPI's rsh launcher runs: AGENT HOST COMMAND...; the only remote host is namespace B.
cat > "$work/agent" <<EOF
#!/bin/sh
shift
exec ip netns exec $B sh -c "\$*"
EOF
chmod +x "$work/agent"
printf '10.77.0.1 slots=1\n10.77.0.2 slots=1\n' > "$work/hosts"

ip netns exec $A env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    timeout 120 mpirun -np 2 --hostfile "$work/hosts" --mca plm_rsh_agent "$work/agent" \
    --mca pml ob1 --mca btl self,tcp --mca btl_tcp_if_include 10.77.0.0/24 --mca oob_tcp_if_include 10.77.0.0/24 "$@"
status=$?
echo "mpi_netns: the veth link carried $(cat /sys/class/net/bnk-veth-a/statistics/tx_bytes 2>/dev/null ||
      ip netns exec $A cat /sys/class/net/bnk-veth-a/statistics/tx_bytes) bytes from host A, status $status"
exit $status
