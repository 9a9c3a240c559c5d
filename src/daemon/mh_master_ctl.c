/* mh_master_ctl: being written (issue 5) */
typedef int mh_master_ctl_placeholder;
