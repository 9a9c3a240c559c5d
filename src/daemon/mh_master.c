/* mh_master: being written (issue 5) */
typedef int mh_master_placeholder;
